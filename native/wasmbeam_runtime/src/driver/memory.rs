//! Bounds of linear-memory copies, and the size past which a copy does not
//! run on a normal scheduler.

use crate::driver::error::{Kind, WbError, WbResult};

/// The largest copy (in bytes) a NIF on a normal scheduler makes. Larger
/// reads and writes of guest memory, through a memory handle or a
/// host-call caller, go to a dirty scheduler: a copy of hundreds of
/// megabytes takes hundreds of milliseconds.
pub const NORMAL_SCHEDULER_COPY_MAX: u64 = 64 * 1024;

/// The byte range `offset..offset + len` of a memory of `size` bytes.
pub fn range(offset: u64, len: u64, size: usize) -> WbResult<std::ops::Range<usize>> {
    match offset.checked_add(len) {
        Some(end) if end <= size as u64 => Ok(offset as usize..end as usize),
        _ => Err(WbError::new(
            Kind::Argument,
            format!("out of bounds: {len} byte(s) at offset {offset}, memory size is {size} bytes"),
        )),
    }
}

/// Refuses a copy too large for a normal scheduler (see
/// [`NORMAL_SCHEDULER_COPY_MAX`]); the dirty variants take any size.
pub fn check_normal_scheduler_copy(len: u64) -> WbResult<()> {
    if len > NORMAL_SCHEDULER_COPY_MAX {
        Err(WbError::new(
            Kind::Argument,
            format!(
                "a copy of {len} bytes is too large for a normal scheduler \
                 (at most {NORMAL_SCHEDULER_COPY_MAX}); use the dirty variant"
            ),
        ))
    } else {
        Ok(())
    }
}
