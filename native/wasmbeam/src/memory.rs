//! Linear memories: size, grow, and bounds-checked reads and writes.

use crate::atoms;
use crate::error::{reply, Kind, WbError, WbResult};
use crate::store::StoreResource;
use rustler::{Binary, Encoder, Env, NewBinary, ResourceArc, Term};
use wasmtime::Memory;

pub struct MemoryResource {
    pub store: ResourceArc<StoreResource>,
    pub memory: Memory,
}

#[rustler::resource_impl]
impl rustler::Resource for MemoryResource {}

/// `%Wasmbeam.Memory{ref: ..., name: ...}`
pub fn encode<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    memory: Memory,
    name: &str,
) -> Term<'a> {
    let r = ResourceArc::new(MemoryResource { store, memory });
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Memory",
        &[
            (atoms::r#ref(), r.encode(env)),
            (atoms::name(), name.encode(env)),
        ],
    )
}

pub fn range(offset: u64, len: u64, size: usize) -> WbResult<std::ops::Range<usize>> {
    let end = offset.checked_add(len);
    match end {
        Some(end) if end <= size as u64 => Ok(offset as usize..end as usize),
        _ => Err(WbError::new(
            Kind::Argument,
            format!("out of bounds: {len} byte(s) at offset {offset}, memory size is {size} bytes"),
        )),
    }
}

#[rustler::nif]
fn memory_size(env: Env, memory: ResourceArc<MemoryResource>) -> Term {
    let r = memory
        .store
        .with_idle(|s| Ok((memory.memory.data_size(&*s), memory.memory.size(&*s))));
    reply(env, r)
}

#[rustler::nif]
fn memory_grow(env: Env, memory: ResourceArc<MemoryResource>, pages: u64) -> Term {
    let r = memory.store.with_idle(|s| {
        memory.memory.grow(&mut *s, pages).map_err(|e| {
            WbError::new(
                Kind::Limit,
                format!("memory cannot grow by {pages} page(s): {e}"),
            )
        })
    });
    reply(env, r)
}

fn read<'a>(env: Env<'a>, memory: &MemoryResource, offset: u64, len: u64) -> Term<'a> {
    let r = memory.store.with_idle(|s| {
        let data = memory.memory.data(&*s);
        let range = range(offset, len, data.len())?;
        let mut out = NewBinary::new(env, range.len());
        out.as_mut_slice().copy_from_slice(&data[range]);
        Ok(Binary::from(out).to_term(env))
    });
    reply(env, r)
}

fn write<'a>(env: Env<'a>, memory: &MemoryResource, offset: u64, bytes: Binary<'a>) -> Term<'a> {
    let r = memory.store.with_idle(|s| {
        let data = memory.memory.data_mut(&mut *s);
        let range = range(offset, bytes.len() as u64, data.len())?;
        data[range].copy_from_slice(bytes.as_slice());
        Ok(atoms::ok())
    });
    match r {
        Ok(ok) => ok.encode(env),
        Err(e) => reply::<()>(env, Err(e)),
    }
}

#[rustler::nif]
fn memory_read(env: Env, memory: ResourceArc<MemoryResource>, offset: u64, len: u64) -> Term {
    read(env, &memory, offset, len)
}

/// The same as `memory_read`, for large ranges: copying many megabytes runs
/// on a dirty scheduler instead of a normal one.
#[rustler::nif(schedule = "DirtyIo")]
fn memory_read_large(env: Env, memory: ResourceArc<MemoryResource>, offset: u64, len: u64) -> Term {
    read(env, &memory, offset, len)
}

#[rustler::nif]
fn memory_write<'a>(
    env: Env<'a>,
    memory: ResourceArc<MemoryResource>,
    offset: u64,
    bytes: Binary<'a>,
) -> Term<'a> {
    write(env, &memory, offset, bytes)
}

#[rustler::nif(schedule = "DirtyIo")]
fn memory_write_large<'a>(
    env: Env<'a>,
    memory: ResourceArc<MemoryResource>,
    offset: u64,
    bytes: Binary<'a>,
) -> Term<'a> {
    write(env, &memory, offset, bytes)
}
