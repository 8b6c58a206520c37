//! Modules: compiled code, shareable by any number of stores of one engine.

use crate::handle;
use crate::nif::error::{guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::types::extern_type;
use crate::resources::atoms;
use crate::resources::compiler;
use crate::resources::engine::EngineResource;
use crate::resources::module::ModuleResource;
use rustler::{Binary, Encoder, Env, NewBinary, OwnedEnv, ResourceArc, Term};
use wasmbeam_core::artifact;
use wasmbeam_runtime::driver::error::{chain_message, guard, Kind, WbError, WbResult};
use wasmtime::Module;

const WASM_MAGIC: &[u8] = b"\0asm";

/// Turns WAT text (of a module or a component) into a binary; binaries
/// pass through untouched.
pub fn to_binary(bytes: &[u8]) -> WbResult<std::borrow::Cow<'_, [u8]>> {
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    wat::parse_bytes(bytes).map_err(|e| {
        let message = format!("not a wasm binary, and not valid WAT text: {e}");
        WbError::new(Kind::Parse, message)
    })
}

/// Wasmparser reports the byte offset of the first problem; keep it.
pub fn binary_error(err: wasmtime::Error) -> WbError {
    let offset = err.chain().find_map(|cause| {
        cause
            .downcast_ref::<wasmparser::BinaryReaderError>()
            .map(|e| e.offset())
    });
    let kind = if offset.is_some() {
        Kind::Validation
    } else {
        Kind::Compile
    };
    WbError::new(kind, chain_message(&err)).with_offset(offset)
}

fn compile(engine: &ResourceArc<EngineResource>, bytes: &[u8]) -> WbResult<ModuleResource> {
    let binary = to_binary(bytes)?;
    let module = Module::from_binary(engine.engine(), &binary).map_err(|err| {
        // Function bodies are validated while they are compiled, and that
        // error carries no offset; a validation pass (only on this error
        // path) finds the offending byte.
        let err = binary_error(err);
        if err.offset.is_none() {
            if let Err(validation) = Module::validate(engine.engine(), &binary) {
                let validation = binary_error(validation);
                if validation.offset.is_some() {
                    return validation;
                }
            }
        }
        err
    })?;
    Ok(ModuleResource {
        module,
        engine: engine.clone(),
    })
}

#[rustler::nif(schedule = "DirtyCpu")]
fn module_compile<'a>(env: Env<'a>, engine: Handle<EngineResource>, bytes: Binary<'a>) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    reply(
        env,
        guard(|| compile(&engine, bytes.as_slice()).map(ResourceArc::new)),
    )
}

/// Compiles on Wasmbeam's compile threads instead of a dirty scheduler
/// (for large modules): answers `{:compiling, id}` at once, and the
/// calling process receives `{:wasmbeam_compiled, id, {:ok, module} |
/// {:error, error}}` (see `resources::compiler`).
#[rustler::nif]
fn module_compile_start<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    guarded(env, || {
        // The binary is kept, not copied: saving a large binary in an
        // environment of the job's own takes a reference to it.
        let owned = OwnedEnv::new();
        let saved = owned.save(bytes.to_term(env));
        let id = compiler::submit(
            env,
            Box::new(move |id| {
                let result = owned
                    .run(|e| {
                        let bytes: Binary = saved.load(e).decode().expect("a binary, as saved");
                        guard(|| compile(&engine, bytes.as_slice()))
                    })
                    .map(ResourceArc::new);
                Box::new(move |env| {
                    (atoms::wasmbeam_compiled(), id, reply(env, result.clone())).encode(env)
                })
            }),
        );
        (atoms::compiling(), id).encode(env)
    })
}

#[rustler::nif(schedule = "DirtyCpu")]
fn module_validate<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    reply(
        env,
        guard(|| {
            let binary = to_binary(bytes.as_slice())?;
            Module::validate(engine.engine(), &binary).map_err(binary_error)
        })
        .map(|()| atoms::ok()),
    )
}

#[rustler::nif]
fn module_name(env: Env, module: Handle<ModuleResource>) -> Term {
    let module = handle!(env, module, "module");
    module.module.name().encode(env)
}

#[rustler::nif]
fn module_imports(env: Env, module: Handle<ModuleResource>) -> Term {
    let module = handle!(env, module, "module");
    guarded(env, || {
        module
            .module
            .imports()
            .map(|i| (i.module(), i.name(), extern_type(env, &i.ty())).encode(env))
            .collect::<Vec<_>>()
            .encode(env)
    })
}

#[rustler::nif]
fn module_exports(env: Env, module: Handle<ModuleResource>) -> Term {
    let module = handle!(env, module, "module");
    guarded(env, || {
        module
            .module
            .exports()
            .map(|e| (e.name(), extern_type(env, &e.ty())).encode(env))
            .collect::<Vec<_>>()
            .encode(env)
    })
}

/// The 32-byte key of a keyed (de)serialization.
pub fn module_key(key: Binary) -> WbResult<[u8; artifact::KEY_LEN]> {
    <[u8; artifact::KEY_LEN]>::try_from(key.as_slice()).map_err(|_| {
        WbError::new(
            Kind::Argument,
            format!(
                "the key must be {} bytes (e.g. :crypto.strong_rand_bytes(32)), got {}",
                artifact::KEY_LEN,
                key.len()
            ),
        )
    })
}

/// Serializes a module: sealed with `key` (a binary), or with an unkeyed
/// digest (`nil`, for `deserialize_unsafe` only).
#[rustler::nif(schedule = "DirtyCpu")]
fn module_serialize<'a>(
    env: Env<'a>,
    module: Handle<ModuleResource>,
    key: Option<Binary<'a>>,
) -> Term<'a> {
    let module = handle!(env, module, "module");
    sealed(env, key, || module.module.serialize())
}

/// Compiled code in the artifact envelope: sealed with `key` (a binary),
/// or with an unkeyed digest (`nil`, for `deserialize_unsafe` only). For
/// modules and components alike.
pub fn sealed<'a>(
    env: Env<'a>,
    key: Option<Binary<'a>>,
    serialize: impl FnOnce() -> wasmtime::Result<Vec<u8>>,
) -> Term<'a> {
    let result = guard(|| {
        let key = key.map(module_key).transpose()?;
        let payload = serialize().map_err(|e| WbError::new(Kind::Compile, chain_message(&e)))?;
        Ok(match key {
            Some(key) => artifact::seal(&key, &payload),
            None => artifact::wrap(&payload),
        })
    })
    .map(|wrapped| {
        let mut out = NewBinary::new(env, wrapped.len());
        out.as_mut_slice().copy_from_slice(&wrapped);
        Binary::from(out).to_term(env)
    });
    reply(env, result)
}

/// The payload of bytes sealed with `key` (`Some`), or of any envelope
/// whose digest holds (`None`, the unsafe load); anything else is refused
/// before Wasmtime sees a byte.
pub fn unsealed<'b>(bytes: &'b [u8], key: Option<Binary>) -> WbResult<&'b [u8]> {
    match key {
        Some(key) => {
            let key = module_key(key)?;
            artifact::open_sealed(&key, bytes).map_err(|m| WbError::new(Kind::Deserialize, m))
        }
        None => artifact::unwrap(bytes).map_err(|m| WbError::new(Kind::Deserialize, m)),
    }
}

/// Loads a module sealed with `key`; anything else is refused before
/// Wasmtime sees a byte.
#[rustler::nif(schedule = "DirtyCpu")]
fn module_deserialize<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
    key: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    let result = guard(|| {
        let payload = unsealed(bytes.as_slice(), Some(key))?;
        // SAFETY: compiled code runs unvalidated; these bytes carry a MAC
        // made with the application's key, so they are bytes it sealed
        // itself. Wasmtime then checks its own header against the engine.
        unsafe { load(&engine, payload) }
    });
    reply(env, result)
}

/// Loads a module from bytes whose source the caller vouches for: an
/// unkeyed digest (or a keyed envelope, without checking its MAC).
#[rustler::nif(schedule = "DirtyCpu")]
fn module_deserialize_unsafe<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    let result = guard(|| {
        let payload = unsealed(bytes.as_slice(), None)?;
        // SAFETY: as `Wasmbeam.Module.deserialize_unsafe/2` documents, the
        // caller vouches that the bytes come from a source it trusts; the
        // digest only catches damage.
        unsafe { load(&engine, payload) }
    });
    reply(env, result)
}

/// # Safety
/// `payload` runs as native code: it must be an artifact Wasmtime made.
unsafe fn load(
    engine: &ResourceArc<EngineResource>,
    payload: &[u8],
) -> WbResult<ResourceArc<ModuleResource>> {
    let module = Module::deserialize(engine.engine(), payload)
        .map_err(|e| WbError::new(Kind::Deserialize, chain_message(&e)))?;
    Ok(ResourceArc::new(ModuleResource {
        module,
        engine: engine.clone(),
    }))
}
