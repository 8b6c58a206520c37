//! Instances: a module instantiated into a store with its imports
//! resolved; calls of exports by name; exports as handles.

use crate::handle;
use crate::nif::error::{error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::handles::{encode_func, encode_global, encode_memory, encode_table, encode_tag};
use crate::nif::imports;
use crate::nif::step::{busy_or_wait, driven_store, encode_begin, me};
use crate::nif::store::CallOptions;
use crate::resources::handles::FuncResource;
use crate::resources::instance::InstanceResource;
use crate::resources::module::ModuleResource;
use crate::resources::store::StoreResource;
use rustler::{Encoder, Env, ResourceArc, Term};
use std::any::Any;
use std::sync::Arc;
use wasmbeam_runtime::domain::imports::{resolve, same_engine};
use wasmbeam_runtime::domain::signature::Signature;
use wasmbeam_runtime::driver::error::{Kind, WbError};
use wasmbeam_runtime::driver::store::Outcome;
use wasmtime::{
    Extern, Func, Global, GlobalType, Instance, Memory, Table, TableType, Tag, ValType,
};

/// Instantiates `module` into `store` with `imports` (see
/// `crate::nif::imports`). The imports become store objects only once the
/// store is taken for the run, so a busy store (a caller that will wait
/// and try again) makes nothing; a binding that does not fit its import
/// makes nothing either.
#[rustler::nif]
fn instance_new<'a>(
    env: Env<'a>,
    store: Handle<StoreResource>,
    module: Handle<ModuleResource>,
    imports: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    let store = handle!(env, store, "store");
    let module = handle!(env, module, "module");
    guarded(env, || {
        if let Err(e) = same_engine(&store.engine.core, module.engine.engine(), "the module") {
            return error(env, &e);
        }
        let specs = match imports::decode(imports, &module.module, &store.handlers, store.id()) {
            Ok(specs) => specs,
            Err(e) => return error(env, &e),
        };
        let engine = store.engine.core.clone();
        let store_id = store.id();
        let wmodule = module.module.clone();
        let attached: Arc<dyn Any + Send + Sync> = Arc::new(module.clone());
        let begin = store.core.start(
            me(env),
            &options.run(),
            &store.notify(env),
            move |mut wstore| {
                let externs = match resolve(&engine, store_id, &mut wstore, &wmodule, &specs) {
                    Ok(externs) => externs,
                    Err(e) => return Err((wstore, e)),
                };
                Ok(Box::pin(async move {
                    let result = Instance::new_async(&mut wstore, &wmodule, &externs)
                        .await
                        .map(|instance| Outcome::Instance(instance, attached));
                    (wstore, result)
                }))
            },
        );
        encode_begin(env, &store, begin)
    })
}

#[rustler::nif]
fn instance_call<'a>(
    env: Env<'a>,
    instance: Handle<InstanceResource>,
    store: Handle<StoreResource>,
    name: &str,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    let instance = handle!(env, instance, "instance");
    let driven = handle!(env, store, "store");
    if let Err(e) = driven_store(&instance.store, &driven) {
        return error(env, &e);
    }
    // `&str`: the name is read in place, not copied into a `String`.
    guarded(env, || match instance.func(name) {
        Ok((func, sig)) => {
            crate::nif::func::call(env, &instance.store, func, &sig, arguments, &options)
        }
        Err(e) => busy_or_wait(env, &instance.store, e, &options.run()),
    })
}

enum Export {
    Func(Func, Arc<Signature>),
    Memory(Memory),
    Global(Global, GlobalType),
    Table(Table, TableType),
    Tag(Tag, Vec<ValType>),
}

/// Looks up an export and returns its handle struct
/// (`%Wasmbeam.Func{}`, `%Wasmbeam.Memory{}`, `%Wasmbeam.Global{}`,
/// `%Wasmbeam.Table{}`, `%Wasmbeam.Tag{}`).
#[rustler::nif]
fn instance_export<'a>(env: Env<'a>, instance: Handle<InstanceResource>, name: String) -> Term<'a> {
    let instance = handle!(env, instance, "instance");
    guarded(env, || {
        let store = &instance.store;
        let found = store.core.with_idle(|wstore| {
            let export = instance
                .instance
                .get_export(&mut *wstore, &name)
                .ok_or_else(|| WbError::new(Kind::NotFound, format!("no export named {name:?}")))?;
            Ok(match export {
                Extern::Func(func) => {
                    let sig = Arc::new(Signature::of(&func, wstore));
                    Export::Func(func, sig)
                }
                Extern::Memory(m) => Export::Memory(m),
                Extern::Global(g) => Export::Global(g, g.ty(&*wstore)),
                Extern::Table(t) => Export::Table(t, t.ty(&*wstore)),
                Extern::Tag(t) => {
                    let params: Vec<ValType> = t.ty(&*wstore).ty().params().collect();
                    Export::Tag(t, params)
                }
                _ => {
                    return Err(WbError::new(
                        Kind::Argument,
                        format!("export {name:?} is of a kind Wasmbeam does not expose yet"),
                    ))
                }
            })
        });
        let term = found.map(|export| match export {
            Export::Func(func, sig) => {
                let r = ResourceArc::new(FuncResource {
                    store: store.clone(),
                    func,
                    sig,
                });
                encode_func(env, r, Some(&name))
            }
            Export::Memory(m) => encode_memory(env, store.clone(), m, &name),
            Export::Global(g, ty) => encode_global(env, store.clone(), g, &ty, &name),
            Export::Table(t, ty) => encode_table(env, store.clone(), t, &ty, &name),
            Export::Tag(t, params) => encode_tag(env, store.clone(), t, &params, &name),
        });
        reply(env, term)
    })
}

/// The names of the exports, in order, with their types.
#[rustler::nif]
fn instance_exports(env: Env, instance: Handle<InstanceResource>) -> Term {
    let instance = handle!(env, instance, "instance");
    guarded(env, || {
        instance
            .module
            .module
            .exports()
            .map(|e| (e.name(), crate::nif::types::extern_type(env, &e.ty())).encode(env))
            .collect::<Vec<_>>()
            .encode(env)
    })
}
