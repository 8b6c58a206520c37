//! Linear memories: size, grow, and bounds-checked reads and writes.

use crate::handle;
use crate::nif::error::{error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::resources::atoms;
use crate::resources::handles::MemoryResource;
use rustler::{Binary, Encoder, Env, NewBinary, Term};
use wasmbeam_runtime::driver::error::{Kind, WbError};
use wasmbeam_runtime::driver::memory::{check_normal_scheduler_copy, range};

#[rustler::nif]
fn memory_size(env: Env, memory: Handle<MemoryResource>) -> Term {
    let memory = handle!(env, memory, "memory");
    guarded(env, || {
        let r = memory
            .store
            .core
            .with_idle(|s| Ok((memory.memory.data_size(&*s), memory.memory.size(&*s))));
        reply(env, r)
    })
}

#[rustler::nif]
fn memory_grow(env: Env, memory: Handle<MemoryResource>, pages: u64) -> Term {
    let memory = handle!(env, memory, "memory");
    guarded(env, || {
        let r = memory.store.core.with_idle(|s| {
            memory.memory.grow(&mut *s, pages).map_err(|e| {
                WbError::new(
                    Kind::Limit,
                    format!("memory cannot grow by {pages} page(s): {e}"),
                )
            })
        });
        reply(env, r)
    })
}

/// Copies out of the memory. On a normal scheduler (`dirty: false`) at
/// most 64 KiB, under the store's lock; on a dirty one any size, with the
/// store lent out of its lock, so that questions about the store (busy?
/// usable?) are answered meanwhile.
fn read<'a>(env: Env<'a>, memory: &MemoryResource, offset: u64, len: u64, dirty: bool) -> Term<'a> {
    let copy = |s: &mut wasmbeam_runtime::driver::store::WStore| {
        let data = memory.memory.data(&*s);
        let range = range(offset, len, data.len())?;
        let mut out = NewBinary::new(env, range.len());
        out.as_mut_slice().copy_from_slice(&data[range]);
        Ok(Binary::from(out).to_term(env))
    };
    let core = &memory.store.core;
    let r = if dirty {
        core.with_idle_notify(&memory.store.notify(env), copy)
    } else {
        check_normal_scheduler_copy(len).and_then(|()| core.with_idle(copy))
    };
    reply(env, r)
}

fn write<'a>(
    env: Env<'a>,
    memory: &MemoryResource,
    offset: u64,
    bytes: Binary<'a>,
    dirty: bool,
) -> Term<'a> {
    let copy = |s: &mut wasmbeam_runtime::driver::store::WStore| {
        let data = memory.memory.data_mut(&mut *s);
        let range = range(offset, bytes.len() as u64, data.len())?;
        data[range].copy_from_slice(bytes.as_slice());
        Ok(atoms::ok())
    };
    let core = &memory.store.core;
    let r = if dirty {
        core.with_idle_notify(&memory.store.notify(env), copy)
    } else {
        check_normal_scheduler_copy(bytes.len() as u64).and_then(|()| core.with_idle(copy))
    };
    match r {
        Ok(ok) => ok.encode(env),
        Err(e) => error(env, &e),
    }
}

#[rustler::nif]
fn memory_read(env: Env, memory: Handle<MemoryResource>, offset: u64, len: u64) -> Term {
    let memory = handle!(env, memory, "memory");
    guarded(env, || read(env, &memory, offset, len, false))
}

/// The same as `memory_read`, for large ranges: copying many megabytes runs
/// on a dirty scheduler instead of a normal one.
#[rustler::nif(schedule = "DirtyIo")]
fn memory_read_large(env: Env, memory: Handle<MemoryResource>, offset: u64, len: u64) -> Term {
    let memory = handle!(env, memory, "memory");
    guarded(env, || read(env, &memory, offset, len, true))
}

#[rustler::nif]
fn memory_write<'a>(
    env: Env<'a>,
    memory: Handle<MemoryResource>,
    offset: u64,
    bytes: Binary<'a>,
) -> Term<'a> {
    let memory = handle!(env, memory, "memory");
    guarded(env, || write(env, &memory, offset, bytes, false))
}

#[rustler::nif(schedule = "DirtyIo")]
fn memory_write_large<'a>(
    env: Env<'a>,
    memory: Handle<MemoryResource>,
    offset: u64,
    bytes: Binary<'a>,
) -> Term<'a> {
    let memory = handle!(env, memory, "memory");
    guarded(env, || write(env, &memory, offset, bytes, true))
}
