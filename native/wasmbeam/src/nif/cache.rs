//! The native half of `Wasmbeam.ModuleCache`: cache keys, and sealed
//! cache files written atomically and loaded through a memory mapping
//! after their keyed hash is verified (format and checks in
//! `wasmbeam_core::sealed` and `wasmbeam_core::sealed_file`).

use crate::handle;
use crate::nif::component::name_atoms;
use crate::nif::error::{bad_term, encode_error, reply};
use crate::nif::handle_arg::Handle;
use crate::resources::atoms;
use crate::resources::component::ComponentResource;
use crate::resources::engine::EngineResource;
use crate::resources::module::ModuleResource;
use rustler::{Binary, Encoder, Env, ResourceArc, Term};
use std::path::Path;
use wasmbeam_core::sealed::KEY_LEN;
use wasmbeam_core::sealed_file::{self, OpenError};
use wasmbeam_runtime::driver::error::{chain_message, guard, Kind, WbError, WbResult};
use wasmbeam_runtime::driver::memory::check_normal_scheduler_copy;
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

rustler::atoms! {
    missing,
    refused,
    component,
}

/// Feeds `Hash` implementations into BLAKE3, so that Wasmtime's
/// `precompile_compatibility_hash` becomes part of a cryptographic key
/// rather than a 64-bit `DefaultHasher` value.
struct Blake3Feed(blake3::Hasher);

impl std::hash::Hasher for Blake3Feed {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("only the BLAKE3 digest is used")
    }
}

/// Names what decides whether compiled code fits: the engine's
/// code-generation settings (Wasmtime's compatibility hash already covers
/// the target triple, compiler flags, CPU features, tunables, Wasm
/// features and Wasmtime's version), plus the Wasmtime version and the
/// host spelled out, so that a key never outlives a change of any of them.
pub fn engine_fingerprint(engine: &wasmtime::Engine) -> blake3::Hash {
    use std::hash::Hash;
    let mut feed = Blake3Feed(blake3::Hasher::new_derive_key(
        "wasmbeam 2026 module cache engine fingerprint v1",
    ));
    engine.precompile_compatibility_hash().hash(&mut feed);
    feed.0.update(b"wasmtime ");
    feed.0.update(WASMTIME_VERSION.as_bytes());
    feed.0.update(b";");
    feed.0.update(std::env::consts::ARCH.as_bytes());
    feed.0.update(b";");
    feed.0.update(std::env::consts::OS.as_bytes());
    feed.0.finalize()
}

/// The Wasmtime release the NIF is built with (the workspace pins it; a
/// new one changes every key).
const WASMTIME_VERSION: &str = "48.0.8";

/// The cache key of `bytes` compiled by `engine`, as 64 hex digits.
fn entry_id(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("wasmbeam 2026 module cache entry v1");
    hasher.update(engine_fingerprint(engine).as_bytes());
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
    hasher.finalize().to_hex().to_string()
}

fn key_of(key: &Binary) -> WbResult<[u8; KEY_LEN]> {
    key.as_slice().try_into().map_err(|_| {
        WbError::new(
            Kind::Argument,
            format!("a cache key must be {KEY_LEN} bytes"),
        )
    })
}

fn io_error(path: &Path, err: std::io::Error) -> WbError {
    WbError::new(
        Kind::Argument,
        format!("module cache: {}: {err}", path.display()),
    )
}

/// Hashes the whole module, so it runs on a dirty scheduler: a 20 MB
/// module takes milliseconds.
#[rustler::nif(schedule = "DirtyCpu")]
fn module_cache_entry<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    entry_id(engine.engine(), bytes.as_slice()).encode(env)
}

/// The same for small modules (at most 64 KiB, tens of microseconds of
/// hashing): a memory hit on a small module then costs no trip to a dirty
/// scheduler. Larger modules are refused here, not only by the Elixir side.
#[rustler::nif]
fn module_cache_entry_small<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    match check_normal_scheduler_copy(bytes.len() as u64) {
        Ok(()) => entry_id(engine.engine(), bytes.as_slice()).encode(env),
        Err(e) => reply::<()>(env, Err(e)),
    }
}

/// Serializes `module` and writes it sealed to `path`. Scheduled as dirty
/// I/O: serializing copies the compiled image, the time goes into writing
/// and flushing it to disk.
/// A module or a component, whichever `compiled` holds.
#[rustler::nif(schedule = "DirtyIo")]
fn module_cache_write<'a>(
    env: Env<'a>,
    compiled: Term<'a>,
    key: Binary<'a>,
    entry: Binary<'a>,
    path: String,
) -> Term<'a> {
    let result = guard(|| {
        let key = key_of(&key)?;
        let serialized = if let Ok(module) = compiled.decode::<ResourceArc<ModuleResource>>() {
            module.module.serialize()
        } else if let Ok(c) = compiled.decode::<ResourceArc<ComponentResource>>() {
            c.component.serialize()
        } else {
            return Err(bad_term("not a live module or component", compiled));
        };
        let artifact = serialized.map_err(|e| WbError::new(Kind::Compile, chain_message(&e)))?;
        let path = Path::new(&path);
        sealed_file::write_sealed(path, &key, entry.as_slice(), &artifact)
            .map_err(|e| io_error(path, e))
    });
    reply(env, result)
}

/// Loads a sealed file: `{:ok, module}`, `:missing`, `{:refused, why}`
/// (the file must be removed and the module recompiled) or
/// `{:error, %Wasmbeam.Error{}}` (the file could not be read).
#[rustler::nif(schedule = "DirtyCpu")]
fn module_cache_load<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    key: Binary<'a>,
    entry: Binary<'a>,
    path: String,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    enum Loaded {
        Module(ResourceArc<ModuleResource>),
        Component(ResourceArc<ComponentResource>),
        Missing,
        Refused(String),
    }
    let result = guard(|| {
        let key = key_of(&key)?;
        let path = Path::new(&path);
        let (file, artifact_len) = match sealed_file::open_verified(path, &key, entry.as_slice()) {
            Ok(opened) => opened,
            Err(OpenError::Missing) => return Ok(Loaded::Missing),
            Err(OpenError::Refused(why)) => return Ok(Loaded::Refused(why)),
            Err(OpenError::Io(e)) => return Err(io_error(path, e)),
        };
        // The kind is read from the path; whatever it says, only the
        // verified bytes of the open file are loaded (a wrong kind fails
        // to load, it never loads other bytes).
        if let Ok(Some(Precompiled::Component)) = Engine::detect_precompiled_file(path) {
            return load_component(env, &engine, &file, artifact_len);
        }
        // SAFETY: the bytes of this open file were just verified against
        // a keyed hash only this cache can produce, so they are an artifact
        // that Wasmtime serialized for this entry; Wasmtime maps this same
        // file (not the path, which could have been renamed over since),
        // and checks its own header against the engine. The file is never
        // written in place (see `sealed_file`).
        match unsafe { Module::deserialize_open_file(engine.engine(), file) } {
            Ok(module) => Ok(Loaded::Module(ResourceArc::new(ModuleResource {
                module,
                engine: engine.clone(),
            }))),
            Err(e) => Ok(Loaded::Refused(format!(
                "Wasmtime refused the artifact: {}",
                chain_message(&e)
            ))),
        }
    });
    /// Components have no load from an open file: the verified artifact
    /// is read from the same descriptor into memory.
    fn load_component(
        env: Env,
        engine: &ResourceArc<EngineResource>,
        file: &std::fs::File,
        len: usize,
    ) -> WbResult<Loaded> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| WbError::new(Kind::Argument, format!("cannot read the artifact: {e}")))?;
        // SAFETY: as for a module: these bytes were verified against a
        // keyed hash only this cache can produce, read from the very file
        // that was verified; Wasmtime checks its header against the engine.
        match unsafe { Component::deserialize(engine.engine(), &bytes) } {
            Ok(component) => {
                name_atoms(env, engine, &component)?;
                Ok(Loaded::Component(ResourceArc::new(ComponentResource {
                    component,
                    engine: engine.clone(),
                })))
            }
            Err(e) => Ok(Loaded::Refused(format!(
                "Wasmtime refused the artifact: {}",
                chain_message(&e)
            ))),
        }
    }
    match result {
        Ok(Loaded::Module(module)) => (atoms::ok(), module).encode(env),
        Ok(Loaded::Component(c)) => (atoms::ok(), c, component()).encode(env),
        Ok(Loaded::Missing) => missing().encode(env),
        Ok(Loaded::Refused(why)) => (refused(), why).encode(env),
        Err(err) => (atoms::error(), encode_error(env, &err)).encode(env),
    }
}
