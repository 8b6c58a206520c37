//! Reading and writing sealed cache files (see `sealed`).
//!
//! Loading hands Wasmtime the very file descriptor whose bytes were
//! verified, so a rename over the path between the check and the load
//! cannot substitute another file. The only way the bytes could change
//! after the check is an in-place write to that inode; the cache never
//! writes in place (it writes a temporary file and renames it), creates
//! files readable and writable by their owner only, and refuses files that
//! others can write, so only a process running as the same user could do
//! that, and such a process can read the secret key anyway.

use crate::sealed::{self, SealError, KEY_LEN};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

#[derive(Debug)]
pub enum OpenError {
    /// No such file: a cache miss, not a problem.
    Missing,
    /// The file exists but must not be loaded.
    Refused(String),
    Io(io::Error),
}

impl From<SealError> for OpenError {
    fn from(e: SealError) -> Self {
        OpenError::Refused(e.to_string())
    }
}

/// Opens `path`, checks that it is a plain file nobody else can write, and
/// verifies its seal through a read-only private mapping. Returns the open
/// file, to be mapped by Wasmtime, and the artifact's length.
pub fn open_verified(
    path: &Path,
    key: &[u8; KEY_LEN],
    entry: &[u8],
) -> Result<(File, usize), OpenError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO put in the file's place opens at once (and is
        // refused by the type check below) instead of blocking for a
        // writer; reads of a regular file are not affected.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => OpenError::Missing,
            _ if e.raw_os_error() == Some(libc::ELOOP) => {
                OpenError::Refused("cache file is a symbolic link".into())
            }
            _ => OpenError::Io(e),
        })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.file_type().is_file() {
        return Err(OpenError::Refused(
            "cache entry is not a regular file".into(),
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(OpenError::Refused(
            "cache file is writable by other users".into(),
        ));
    }
    let len = usize::try_from(meta.len())
        .map_err(|_| OpenError::Refused("cache file too large to map".into()))?;
    if len < sealed::TRAILER_LEN {
        return Err(SealError::Truncated.into());
    }
    let artifact_len = with_mapping(&file, len, |bytes| sealed::verify(key, entry, bytes))??;
    Ok((file, artifact_len))
}

/// Runs `f` over a read-only private mapping of the whole file.
fn with_mapping<T>(file: &File, len: usize, f: impl FnOnce(&[u8]) -> T) -> Result<T, OpenError> {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh read-only private mapping of `len` bytes (the file's
    // size, checked non-zero by the caller) that is unmapped before
    // returning; the slice does not outlive it.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        if ptr == libc::MAP_FAILED {
            return Err(OpenError::Io(io::Error::last_os_error()));
        }
        let result = f(std::slice::from_raw_parts(ptr as *const u8, len));
        libc::munmap(ptr, len);
        Ok(result)
    }
}

/// Writes `artifact` plus its seal to `path` atomically: a temporary file
/// in the same directory (owner-only permissions), written, flushed to
/// disk, then renamed over `path`, and the directory flushed so the rename
/// survives a crash. Readers see the old file, no file, or the whole new
/// one, never a torn one. Returns the file's size.
pub fn write_sealed(
    path: &Path,
    key: &[u8; KEY_LEN],
    entry: &[u8],
    artifact: &[u8],
) -> io::Result<u64> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(artifact)?;
        file.write_all(&sealed::trailer(key, entry, artifact))?;
        file.sync_all()?;
        let size = file.metadata()?.size();
        drop(file);
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A per-process counter, so that threads writing the same entry at once
/// use distinct temporary files.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "wasmbeam-sealed-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_fifo_in_the_entry_place_is_refused_without_blocking() {
        let d = dir();
        let path = d.join("fifo.cwasm");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer for ever.
        assert!(matches!(
            open_verified(&path, &[1; KEY_LEN], b"e"),
            Err(OpenError::Refused(_))
        ));
    }

    #[test]
    fn round_trip_and_refusals() {
        let d = dir();
        let path = d.join("e.cwasm");
        let key = [1; KEY_LEN];
        let size = write_sealed(&path, &key, b"e", b"some artifact").unwrap();
        assert_eq!(size as usize, 13 + sealed::TRAILER_LEN);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (_, len) = open_verified(&path, &key, b"e").unwrap();
        assert_eq!(len, 13);
        assert!(matches!(
            open_verified(&path, &[2; KEY_LEN], b"e"),
            Err(OpenError::Refused(_))
        ));
        assert!(matches!(
            open_verified(&d.join("none"), &key, b"e"),
            Err(OpenError::Missing)
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            open_verified(&path, &key, b"e"),
            Err(OpenError::Refused(_))
        ));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
