//! Components: compiled from bytes or component WAT, described as WIT,
//! instantiated into a store with Elixir handlers for their imports, and
//! called by name or by interface and name. Calls and host calls run on
//! the same driver as a core module's (`encode_begin`, the Elixir
//! `Wasmbeam.Driver`).

use crate::handle;
use crate::nif::component_types::{func_wit, make_name_atoms};
use crate::nif::component_values::{decode_args, encode_result, DecodeCx, NORMAL_SCHEDULER_WEIGHT};
use crate::nif::error::{bad_term, error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::module::{binary_error, sealed, to_binary, unsealed};
use crate::nif::step::{busy_or_wait, driven_store, encode_begin, me};
use crate::nif::store::CallOptions;
use crate::resources::atoms;
use crate::resources::component::{
    ComponentInstanceResource, ComponentResource, GuestResource, LinkedComponentResource,
};
use crate::resources::engine::EngineResource;
use crate::resources::handlers::Handlers;
use crate::resources::store::StoreResource;
use rustler::{Binary, Encoder, Env, ResourceArc, Term};
use std::any::Any;
use std::sync::Arc;
use wasmbeam_runtime::domain::component::{
    call_future, drop_future, fast_call_future, imported_funcs, imported_resources,
    instantiate_future, instantiate_pre_future, link, linker, result_types, BytesKind,
    ComponentImportSpec, FastShape, ItemPath,
};
use wasmbeam_runtime::domain::imports::same_engine;
use wasmbeam_runtime::driver::error::{chain_message, guard, Kind, WbError, WbResult};
use wasmbeam_runtime::driver::host_slot::{HostImport, ResultTypes};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;

fn compile(
    env: Env,
    engine: &ResourceArc<EngineResource>,
    bytes: &[u8],
) -> WbResult<ComponentResource> {
    let binary = to_binary(bytes)?;
    if !wasmparser::Parser::is_component(&binary) {
        return Err(WbError::new(
            Kind::Argument,
            "this is a core module, not a component: compile it with Wasmbeam.Module",
        ));
    }
    let component = Component::from_binary(engine.engine(), &binary).map_err(binary_error)?;
    name_atoms(env, engine, &component)?;
    Ok(ComponentResource {
        component,
        engine: engine.clone(),
    })
}

/// Makes the atoms for the names in `component`'s types (bounded: see
/// `component_types`), whether it was compiled or loaded.
pub fn name_atoms(env: Env, engine: &EngineResource, component: &Component) -> WbResult<()> {
    let ty = component.component_type();
    let items = ty
        .imports(engine.engine())
        .chain(ty.exports(engine.engine()))
        .map(|(_, item)| item.ty)
        .collect::<Vec<_>>();
    make_name_atoms(env, engine.engine(), items.into_iter())
}

#[rustler::nif(schedule = "DirtyCpu")]
fn component_compile<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    reply(
        env,
        guard(|| compile(env, &engine, bytes.as_slice()).map(ResourceArc::new)),
    )
}

/// Serializes a component in the artifact envelope, as
/// `module_serialize` does a module.
#[rustler::nif(schedule = "DirtyCpu")]
fn component_serialize<'a>(
    env: Env<'a>,
    component: Handle<ComponentResource>,
    key: Option<Binary<'a>>,
) -> Term<'a> {
    let component = handle!(env, component, "component");
    sealed(env, key, || component.component.serialize())
}

/// Loads a component from bytes sealed with `key` (a binary), or, with
/// `nil`, from any intact envelope (the caller vouches for the source).
#[rustler::nif(schedule = "DirtyCpu")]
fn component_deserialize<'a>(
    env: Env<'a>,
    engine: Handle<EngineResource>,
    bytes: Binary<'a>,
    key: Option<Binary<'a>>,
) -> Term<'a> {
    let engine = handle!(env, engine, "engine");
    let result = guard(|| {
        let payload = unsealed(bytes.as_slice(), key)?;
        if wasmtime::Engine::detect_precompiled(payload) != Some(wasmtime::Precompiled::Component) {
            return Err(WbError::new(
                Kind::Deserialize,
                "these bytes are not a serialized component (a module's go to Wasmbeam.Module.deserialize)",
            ));
        }
        // SAFETY: compiled code runs unvalidated. With a key, the bytes
        // carry a MAC made with the application's key, so the application
        // sealed them itself; without one, the caller vouches for them
        // (`deserialize_unsafe`). Wasmtime checks its own header against
        // the engine.
        let component = unsafe { Component::deserialize(engine.engine(), payload) }
            .map_err(|e| WbError::new(Kind::Deserialize, chain_message(&e)))?;
        name_atoms(env, &engine, &component)?;
        Ok(ResourceArc::new(ComponentResource {
            component,
            engine: engine.clone(),
        }))
    });
    reply(env, result)
}

/// One import or export, as `{name, description}`: `{:func, wit}`,
/// `{:interface, [{name, {:func, wit}}, ...]}`, `{:resource, nil}`, or
/// `{:other, kind}`.
fn describe<'a>(env: Env<'a>, engine: &wasmtime::Engine, item: &ComponentItem) -> Term<'a> {
    match item {
        ComponentItem::ComponentFunc(f) => (atoms::func(), func_wit(f)).encode(env),
        ComponentItem::ComponentInstance(i) => {
            let items: Vec<Term> = i
                .exports(engine)
                .map(|(name, item)| (name, describe(env, engine, &item.ty)).encode(env))
                .collect();
            (atoms::interface(), items).encode(env)
        }
        ComponentItem::Resource(_) => (atoms::resource(), atoms::nil()).encode(env),
        ComponentItem::Component(_) => (atoms::other(), "component").encode(env),
        ComponentItem::Module(_) => (atoms::other(), "module").encode(env),
        ComponentItem::CoreFunc(_) => (atoms::other(), "core func").encode(env),
        ComponentItem::Type(_) => (atoms::other(), "type").encode(env),
    }
}

/// `{imports, exports}`, each a list of `{name, description}`.
#[rustler::nif]
fn component_describe(env: Env, component: Handle<ComponentResource>) -> Term {
    let component = handle!(env, component, "component");
    guarded(env, || {
        let engine = component.engine.engine();
        let ty = component.component.component_type();
        let list = |items: Vec<(String, ComponentItem)>| -> Vec<Term> {
            items
                .iter()
                .map(|(name, item)| (name.as_str(), describe(env, engine, item)).encode(env))
                .collect()
        };
        let imports = list(
            ty.imports(engine)
                .map(|(n, i)| (n.to_string(), i.ty))
                .collect(),
        );
        let exports = list(
            ty.exports(engine)
                .map(|(n, i)| (n.to_string(), i.ty))
                .collect(),
        );
        reply(env, Ok((imports, exports)))
    })
}

/// The functions and resources the component imports:
/// `[{interface | nil, name, arity | :resource}]`.
#[rustler::nif]
fn component_import_funcs(env: Env, component: Handle<ComponentResource>) -> Term {
    let component = handle!(env, component, "component");
    guarded(env, || {
        let engine = component.engine.engine();
        let mut items: Vec<Term> = imported_funcs(&component.component, engine)
            .into_iter()
            .map(|f| {
                (
                    f.path.interface.as_deref(),
                    f.path.name.as_str(),
                    f.types.params.len(),
                )
                    .encode(env)
            })
            .collect();
        items.extend(
            imported_resources(&component.component, engine)
                .into_iter()
                .map(|p| (p.interface.as_deref(), p.name.as_str(), atoms::resource()).encode(env)),
        );
        reply(env, Ok(items))
    })
}

fn decode_path(interface: Term, name: Term) -> WbResult<ItemPath> {
    let interface = if interface == atoms::nil().encode(interface.get_env()) {
        None
    } else {
        Some(
            interface
                .decode::<String>()
                .map_err(|_| bad_term("an interface name must be a string", interface))?,
        )
    };
    let name = name
        .decode::<String>()
        .map_err(|_| bad_term("a function name must be a string", name))?;
    Ok(ItemPath { interface, name })
}

/// Instantiates `component` into `store`. `imports` is a list of
/// `{interface | nil, name, handler}`, one per imported function the
/// caller implements; the handler terms are registered in the store's
/// registry (as for core host functions).
#[rustler::nif]
fn component_instantiate<'a>(
    env: Env<'a>,
    store: Handle<StoreResource>,
    component: Handle<ComponentResource>,
    imports: Term<'a>,
    wasi: bool,
    options: CallOptions,
) -> Term<'a> {
    let store = handle!(env, store, "store");
    let component = handle!(env, component, "component");
    guarded(env, || {
        if let Err(e) = same_engine(
            &store.engine.core,
            component.engine.engine(),
            "the component",
        ) {
            return error(env, &e);
        }
        let specs = match decode_imports(imports, &component, &store.handlers) {
            Ok(specs) => specs,
            Err(e) => return error(env, &e),
        };
        // Only an instantiation given WASI options gets WASI preview 2
        // linked (as a core module's WASI imports resolve only then): the
        // store's context grants the component exactly what they list. A
        // store whose WASI context another instance asked for grants this
        // component nothing.
        if wasi && store.core.wasi.get().is_none() {
            let e = WbError::new(
                Kind::Argument,
                "WASI was asked for, but the store has no WASI context",
            );
            return error(env, &e);
        }
        let wasi = wasi.then_some(&*store.engine.core);
        let linker = match linker(
            component.engine.engine(),
            &component.component,
            &specs,
            wasi,
        ) {
            Ok(linker) => linker,
            Err(e) => return error(env, &e),
        };
        let wcomponent = component.component.clone();
        let attached: Arc<dyn Any + Send + Sync> = Arc::new(component.clone());
        let begin = store
            .core
            .start(me(env), &options.run(), &store.notify(env), move |wstore| {
                Ok(instantiate_future(wstore, linker, wcomponent, attached))
            });
        encode_begin(env, &store, begin)
    })
}

fn decode_imports(
    list: Term,
    component: &ComponentResource,
    handlers: &Arc<Handlers>,
) -> WbResult<Vec<ComponentImportSpec>> {
    let not_a_list = || bad_term("imports must be a proper list", list);
    list.list_length().map_err(|_| not_a_list())?;
    let terms: Vec<Term> = list.decode().map_err(|_| not_a_list())?;
    let engine = component.engine.engine();
    let funcs = imported_funcs(&component.component, engine);
    let resources = imported_resources(&component.component, engine);
    // A function, with its types; or a resource (`None`), whose binding
    // is `{:resource, destructor_handler}`.
    let mut decoded = Vec::with_capacity(terms.len());
    for term in &terms {
        let (interface, name, handler): (Term, Term, Term) = term
            .decode()
            .map_err(|_| bad_term("not a component import binding", *term))?;
        let path = decode_path(interface, name)?;
        if let Some(func) = funcs.iter().find(|f| f.path == path) {
            decoded.push((path, Some(func), handler));
        } else if resources.contains(&path) {
            let (tag, dtor): (rustler::Atom, Term) = handler.decode().map_err(|_| {
                bad_term("a resource binding must be {:resource, handler}", handler)
            })?;
            if tag != atoms::resource() {
                return Err(bad_term(
                    "a resource binding must be {:resource, handler}",
                    handler,
                ));
            }
            decoded.push((path, None, dtor));
        } else {
            return Err(WbError::new(
                Kind::Link,
                format!("the component imports no function or resource {path}"),
            ));
        }
    }
    // Only now, with every binding known to fit, are handlers registered.
    let registry: Arc<dyn Any + Send + Sync> = handlers.clone();
    Ok(decoded
        .into_iter()
        .map(|(path, func, handler)| {
            let index = handlers.register(handler);
            let name = path.to_string();
            let (results, params) = match func {
                Some(f) => (
                    result_types(&f.types),
                    f.types.params.iter().map(|(_, t)| t.clone()).collect(),
                ),
                None => (ResultTypes::Component(None), Arc::from([])),
            };
            ComponentImportSpec {
                import: HostImport::with_results(
                    registry.clone(),
                    handlers.id,
                    index,
                    &name,
                    results,
                ),
                params,
                resource: func.is_none(),
                path,
            }
        })
        .collect())
}

/// Links `component` with `imports` (as for `component_instantiate`)
/// once; `component_linked_instantiate` then only creates instances.
#[rustler::nif]
fn component_link<'a>(
    env: Env<'a>,
    component: Handle<ComponentResource>,
    imports: Term<'a>,
    wasi: bool,
) -> Term<'a> {
    let component = handle!(env, component, "component");
    let result = guard(|| {
        let handlers = Arc::new(Handlers::default());
        let specs = decode_imports(imports, &component, &handlers)?;
        let core = &*component.engine.core;
        let pre = link(
            component.engine.engine(),
            &component.component,
            &specs,
            wasi.then_some(core),
        )?;
        Ok(ResourceArc::new(LinkedComponentResource {
            component: component.clone(),
            pre,
            wasi,
        }))
    });
    reply(env, result)
}

/// Instantiates a linked component into `store`.
#[rustler::nif]
fn component_linked_instantiate(
    env: Env,
    store: Handle<StoreResource>,
    linked: Handle<LinkedComponentResource>,
    options: CallOptions,
) -> Term {
    let store = handle!(env, store, "store");
    let linked = handle!(env, linked, "linked component");
    guarded(env, || {
        let engine = linked.component.engine.engine();
        if let Err(e) = same_engine(&store.engine.core, engine, "the linked component") {
            return error(env, &e);
        }
        if linked.wasi && store.core.wasi.get().is_none() {
            let e = WbError::new(
                Kind::Argument,
                "the component was linked with WASI: its instances need wasi: options",
            );
            return error(env, &e);
        }
        let pre = linked.pre.clone();
        let attached: Arc<dyn Any + Send + Sync> = Arc::new(linked.component.clone());
        let begin = store
            .core
            .start(me(env), &options.run(), &store.notify(env), move |wstore| {
                Ok(instantiate_pre_future(wstore, pre, attached))
            });
        encode_begin(env, &store, begin)
    })
}

/// Calls the exported function `name` (in `interface`, or at the top
/// level for `nil`) with `arguments`. Arguments too large to decode on a
/// normal scheduler answer `:dirty`: the caller calls `component_call_dirty`.
#[rustler::nif]
fn component_call<'a>(
    env: Env<'a>,
    instance: Handle<ComponentInstanceResource>,
    store: Handle<StoreResource>,
    interface: Term<'a>,
    name: Term<'a>,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    call(
        env, instance, store, interface, name, arguments, options, false,
    )
}

/// `component_call` on a dirty scheduler, for large arguments.
#[rustler::nif(schedule = "DirtyCpu")]
fn component_call_dirty<'a>(
    env: Env<'a>,
    instance: Handle<ComponentInstanceResource>,
    store: Handle<StoreResource>,
    interface: Term<'a>,
    name: Term<'a>,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    call(
        env, instance, store, interface, name, arguments, options, true,
    )
}

/// Encodes a result that was too large to encode on a normal scheduler
/// (the run answered `{:dirty_result, store_id}`).
#[rustler::nif(schedule = "DirtyCpu")]
fn component_take_result(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let taken = store.pending_result.lock().take();
        match taken {
            Some(value) => encode_result(env, Some(value), &store),
            None => error(
                env,
                &WbError::new(
                    Kind::Argument,
                    "no component result is waiting on this store",
                ),
            ),
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn call<'a>(
    env: Env<'a>,
    instance: Handle<ComponentInstanceResource>,
    store: Handle<StoreResource>,
    interface: Term<'a>,
    name: Term<'a>,
    arguments: Term<'a>,
    options: CallOptions,
    dirty: bool,
) -> Term<'a> {
    let instance = handle!(env, instance, "component instance");
    let driven = handle!(env, store, "store");
    guarded(env, || {
        if let Err(e) = driven_store(&instance.store, &driven) {
            return error(env, &e);
        }
        let path = match decode_path(interface, name) {
            Ok(path) => path,
            Err(e) => return error(env, &e),
        };
        let store = &instance.store;
        let (func, types) = match instance.func(&path) {
            Ok(found) => found,
            Err(e) => return busy_or_wait(env, store, e, &options.run()),
        };
        if let Some(shape) = types.fast {
            if let Some(input) = fast_input(arguments, shape) {
                let begin =
                    store
                        .core
                        .start(me(env), &options.run(), &store.notify(env), |wstore| {
                            let dropped = std::mem::take(&mut *store.dropped_resources.lock());
                            Ok(fast_call_future(wstore, func, shape, input, dropped))
                        });
                return encode_begin(env, store, begin);
            }
        }
        let mut cx = DecodeCx {
            store,
            moved: Vec::new(),
            host_answer: false,
            budget: (!dirty).then_some(NORMAL_SCHEDULER_WEIGHT),
            too_heavy: false,
            inserted: Vec::new(),
        };
        let params = match decode_args(arguments, &types.params, &mut cx) {
            Ok(params) => params,
            // Too large for this scheduler: the caller decodes on a dirty one.
            Err(_) if cx.too_heavy => return atoms::dirty().encode(env),
            Err(e) => return error(env, &e),
        };
        let moved = cx.moved;
        let result = types.result.clone();
        let begin = store
            .core
            .start(me(env), &options.run(), &store.notify(env), |wstore| {
                let dropped = std::mem::take(&mut *store.dropped_resources.lock());
                Ok(call_future(wstore, func, params, result, dropped))
            });
        if matches!(begin, Ok(wasmbeam_runtime::driver::store::Begin::Polled(_))) {
            // The guest took ownership of what was passed as `own`.
            for handle in &moved {
                handle.moved();
            }
        }
        encode_begin(env, store, begin)
    })
}

/// The bytes of a typed call's one argument: a binary (valid UTF-8 for a
/// `string`). Anything else takes the dynamic path, which accepts a list
/// of bytes too and says what is wrong.
fn fast_input(arguments: Term, shape: FastShape) -> Option<Vec<u8>> {
    let (head, tail) = arguments.list_get_cell().ok()?;
    if !tail.is_empty_list() || !head.is_binary() {
        return None;
    }
    let bytes = head.decode::<Binary>().ok()?.as_slice();
    if shape.param == BytesKind::String && std::str::from_utf8(bytes).is_err() {
        return None;
    }
    Some(bytes.to_vec())
}

/// How many states of host-defined resources `store` holds (for tests
/// and diagnostics: each is a resource the guest has not dropped).
#[rustler::nif]
fn component_host_states(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    store.host_states.count().encode(env)
}

/// Drops a guest resource now (its destructor runs in the guest, as a
/// call with `options`). Dropping one already dropped or handed to the
/// guest is an `:argument` error.
#[rustler::nif]
fn component_resource_drop<'a>(
    env: Env<'a>,
    resource: Handle<GuestResource>,
    store: Handle<StoreResource>,
    options: CallOptions,
) -> Term<'a> {
    let resource = handle!(env, resource, "component resource");
    let driven = handle!(env, store, "store");
    guarded(env, || {
        if let Err(e) = driven_store(&resource.store, &driven) {
            return error(env, &e);
        }
        if !resource.take_for_drop() {
            return error(
                env,
                &WbError::new(
                    Kind::Argument,
                    "the resource was already dropped or handed to the guest",
                ),
            );
        }
        let store = &resource.store;
        let r = resource.resource;
        let begin = store
            .core
            .start(me(env), &options.run(), &store.notify(env), |wstore| {
                Ok(drop_future(wstore, r))
            });
        if !matches!(begin, Ok(wasmbeam_runtime::driver::store::Begin::Polled(_))) {
            resource.restore();
        }
        encode_begin(env, store, begin)
    })
}
