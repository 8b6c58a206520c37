//! Modules: compiled code, shareable by any number of stores of one engine.

use crate::nif::error::{guarded, reply};
use crate::nif::types::extern_type;
use crate::resources::atoms;
use crate::resources::engine::EngineResource;
use crate::resources::module::ModuleResource;
use rustler::{Binary, Encoder, Env, NewBinary, ResourceArc, Term};
use wasmbeam_runtime::driver::error::{chain_message, guard, Kind, WbError, WbResult};
use wasmtime::Module;

const WASM_MAGIC: &[u8] = b"\0asm";

/// Turns WAT text into a binary; binaries pass through untouched.
fn to_binary(bytes: &[u8]) -> WbResult<std::borrow::Cow<'_, [u8]>> {
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    wat::parse_bytes(bytes).map_err(|e| {
        let message = format!("not a wasm binary, and not valid WAT text: {e}");
        WbError::new(Kind::Parse, message)
    })
}

/// Wasmparser reports the byte offset of the first problem; keep it.
fn binary_error(err: wasmtime::Error) -> WbError {
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
fn module_compile<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    reply(
        env,
        guard(|| compile(&engine, bytes.as_slice()).map(ResourceArc::new)),
    )
}

#[rustler::nif(schedule = "DirtyCpu")]
fn module_validate<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
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
fn module_name(module: ResourceArc<ModuleResource>) -> Option<String> {
    module.module.name().map(str::to_owned)
}

#[rustler::nif]
fn module_imports(env: Env, module: ResourceArc<ModuleResource>) -> Term {
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
fn module_exports(env: Env, module: ResourceArc<ModuleResource>) -> Term {
    guarded(env, || {
        module
            .module
            .exports()
            .map(|e| (e.name(), extern_type(env, &e.ty())).encode(env))
            .collect::<Vec<_>>()
            .encode(env)
    })
}

#[rustler::nif(schedule = "DirtyCpu")]
fn module_serialize(env: Env, module: ResourceArc<ModuleResource>) -> Term {
    let result = guard(|| {
        module
            .module
            .serialize()
            .map_err(|e| WbError::new(Kind::Compile, chain_message(&e)))
    })
    .map(|payload| {
        let wrapped = wasmbeam_core::artifact::wrap(&payload);
        let mut out = NewBinary::new(env, wrapped.len());
        out.as_mut_slice().copy_from_slice(&wrapped);
        Binary::from(out).to_term(env)
    });
    reply(env, result)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn module_deserialize<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let result = guard(|| {
        let payload = wasmbeam_core::artifact::unwrap(bytes.as_slice())
            .map_err(|m| WbError::new(Kind::Deserialize, m))?;
        // SAFETY: compiled code runs unvalidated. The envelope's unkeyed
        // digest only catches corruption, not forgery: the bytes must come
        // from a source the caller trusts, as `Wasmbeam.Module.deserialize/2`
        // documents (the module cache loads only files sealed with its own
        // key). Wasmtime then checks its own header against this engine.
        let module = unsafe { Module::deserialize(engine.engine(), payload) }
            .map_err(|e| WbError::new(Kind::Deserialize, chain_message(&e)))?;
        Ok(ResourceArc::new(ModuleResource {
            module,
            engine: engine.clone(),
        }))
    });
    reply(env, result)
}
