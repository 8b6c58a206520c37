//! Linked modules: a module linked once with its host functions and WASI
//! (Wasmtime's `InstancePre`), instantiated into any store of its engine.

use crate::handle;
use crate::nif::error::{error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::imports;
use crate::nif::step::{encode_begin, me};
use crate::nif::store::CallOptions;
use crate::resources::handlers::Handlers;
use crate::resources::linked::LinkedResource;
use crate::resources::module::ModuleResource;
use crate::resources::store::StoreResource;
use rustler::{Env, ResourceArc, Term};
use std::any::Any;
use std::sync::Arc;
use wasmbeam_runtime::domain::imports::{link, reserve_instance, same_engine};
use wasmbeam_runtime::driver::error::{guard, Kind, WbError};
use wasmbeam_runtime::driver::store::Outcome;

#[rustler::nif]
fn linked_new<'a>(env: Env<'a>, module: Handle<ModuleResource>, imports: Term<'a>) -> Term<'a> {
    let module = handle!(env, module, "module");
    let result = guard(|| {
        let handlers = Arc::new(Handlers::default());
        let specs = imports::decode(imports, &module.module, &handlers, 0)?;
        let linked = link(&module.engine.core, &module.module, &specs)?;
        Ok(ResourceArc::new(LinkedResource {
            engine: module.engine.clone(),
            module: module.clone(),
            linked,
        }))
    });
    reply(env, result)
}

/// Instantiates a linked module into `store`.
#[rustler::nif]
fn linked_instantiate(
    env: Env,
    store: Handle<StoreResource>,
    linked: Handle<LinkedResource>,
    options: CallOptions,
) -> Term {
    let store = handle!(env, store, "store");
    let linked = handle!(env, linked, "linked module");
    guarded(env, || {
        if let Err(e) = same_engine(
            &store.engine.core,
            linked.engine.engine(),
            "the linked module",
        ) {
            return error(env, &e);
        }
        if linked.linked.wasi && store.core.wasi.get().is_none() {
            return error(
                env,
                &WbError::new(
                    Kind::Link,
                    "the linked module imports WASI, but the store has no WASI context (pass wasi: options)",
                ),
            );
        }
        let pre = linked.linked.pre.clone();
        let wmodule = linked.module.module.clone();
        let attached: Arc<dyn Any + Send + Sync> = Arc::new(linked.module.clone());
        let begin = store.core.start(
            me(env),
            &options.run(),
            &store.notify(env),
            move |mut wstore| {
                if let Err(e) = reserve_instance(&mut wstore, &wmodule) {
                    return Err((wstore, e));
                }
                Ok(Box::pin(async move {
                    let result = pre
                        .instantiate_async(&mut wstore)
                        .await
                        .map(|instance| Outcome::Instance(instance, attached));
                    (wstore, result)
                }))
            },
        );
        encode_begin(env, &store, begin)
    })
}
