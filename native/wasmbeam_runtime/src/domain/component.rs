//! Components: their imports implemented by host handlers (linked per
//! instantiation, typed by the component itself), and their exported
//! functions found by name or by interface and name.
//!
//! A component's calls and host calls run on the same driver as a core
//! module's: the run is a future that owns the store, polled one slice at
//! a time, and a host call waits in the store's host slot
//! (`crate::driver::host_slot::component_host_call`).

use crate::driver::engine::EngineCore;
use crate::driver::error::{GuestFault, Kind, WbError, WbResult};
use crate::driver::host_slot::{component_host_call, host_resource_drop, HostImport, ResultTypes};
use crate::driver::store::{Outcome, RunFuture, WStore};
use crate::driver::store_data::StoreData;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Func, Instance, InstancePre, Linker, ResourceAny, Type, Val};
use wasmtime::{AsContextMut, Engine};

/// Where an import or export lives: at the component's top level, or in
/// one of its interfaces (`"my:pkg/shapes@0.1.0"`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemPath {
    pub interface: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ItemPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.interface {
            Some(interface) => write!(f, "{interface}#{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A function's parameter and result types, read once.
#[derive(Debug, Clone)]
pub struct FuncTypes {
    pub params: Vec<(String, Type)>,
    pub result: Option<Type>,
    /// The typed path this function's calls can take, if any.
    pub fast: Option<FastShape>,
}

impl FuncTypes {
    pub fn of(ty: &ComponentFunc) -> FuncTypes {
        let params: Vec<(String, Type)> = ty.params().map(|(n, t)| (n.to_string(), t)).collect();
        let result = ty.results().next();
        let fast = match (params.as_slice(), &result) {
            ([(_, p)], r) => match (BytesKind::of(p), r.as_ref().map(BytesKind::of)) {
                (Some(param), None) => Some(FastShape {
                    param,
                    result: None,
                }),
                (Some(param), Some(Some(r))) => Some(FastShape {
                    param,
                    result: Some(r),
                }),
                _ => None,
            },
            _ => None,
        };
        FuncTypes {
            params,
            result,
            fast,
        }
    }
}

/// A `list<u8>` or a `string`: bytes that a typed call copies in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesKind {
    List,
    String,
}

impl BytesKind {
    fn of(ty: &Type) -> Option<BytesKind> {
        match ty {
            Type::String => Some(BytesKind::String),
            Type::List(l) if matches!(l.ty(), Type::U8) => Some(BytesKind::List),
            _ => None,
        }
    }
}

/// A function of one `list<u8>` or `string` parameter and a result of
/// either kind, or none: the shape of most plugin entry points
/// (`func(input: list<u8>) -> list<u8>`). Its calls take Wasmtime's typed
/// path, which copies the bytes at once; the dynamic path makes a value
/// per byte (a 1 MiB `list<u8>` round trip took 190 ms that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastShape {
    pub param: BytesKind,
    pub result: Option<BytesKind>,
}

/// A function the component imports, with its types.
pub struct ImportedFunc {
    pub path: ItemPath,
    pub types: FuncTypes,
}

/// Every function `component` imports, at its top level or in an
/// imported interface, in the component's order. Imports of other kinds
/// (resources, whole components, modules) are listed by
/// [`unsupported_imports`].
pub fn imported_funcs(component: &Component, engine: &Engine) -> Vec<ImportedFunc> {
    let mut out = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(f) => out.push(ImportedFunc {
                path: ItemPath {
                    interface: None,
                    name: name.to_string(),
                },
                types: FuncTypes::of(&f),
            }),
            ComponentItem::ComponentInstance(instance) => {
                for (fname, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(f) = item.ty {
                        out.push(ImportedFunc {
                            path: ItemPath {
                                interface: Some(name.to_string()),
                                name: fname.to_string(),
                            },
                            types: FuncTypes::of(&f),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// What to define for a component import: a host function, or a
/// resource type the host implements (its state lives with the NIF
/// crate; `import` is the handler its destructor calls).
pub struct ComponentImportSpec {
    pub path: ItemPath,
    pub import: HostImport,
    pub params: Arc<[Type]>,
    pub resource: bool,
}

static NEXT_HOST_RESOURCE_TYPE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Every resource a component imports, at its top level or in an
/// imported interface.
pub fn imported_resources(component: &Component, engine: &Engine) -> Vec<ItemPath> {
    let mut out = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        match item.ty {
            ComponentItem::Resource(_) => out.push(ItemPath {
                interface: None,
                name: name.to_string(),
            }),
            ComponentItem::ComponentInstance(instance) => {
                for (rname, item) in instance.exports(engine) {
                    if let ComponentItem::Resource(_) = item.ty {
                        out.push(ItemPath {
                            interface: Some(name.to_string()),
                            name: rname.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The result type a host handler's answer is decoded against.
pub fn result_types(types: &FuncTypes) -> ResultTypes {
    ResultTypes::Component(types.result.clone())
}

/// A linker with a host function for each spec (grouped by interface),
/// and an instance for every interface `component` imports (one that
/// only shares types, `use`d by others, needs nothing more). What the
/// component imports and the specs leave out fails at instantiation, with
/// Wasmtime's message naming it.
///
/// With `wasi` (the engine of the component), Wasmtime's WASI preview 2
/// interfaces are linked too: they read the store's WASI context, which
/// grants exactly what `Wasmbeam.Wasi.Options` listed. Without it, a
/// component that imports a `wasi:` interface nobody implements is
/// refused here, with a message saying to pass WASI options.
pub fn linker(
    engine: &Engine,
    component: &Component,
    specs: &[ComponentImportSpec],
    wasi: Option<&EngineCore>,
) -> WbResult<Linker<StoreData>> {
    let imports = component.component_type();
    let mut linker = match wasi {
        Some(core) => wasi_linker(core)?.clone(),
        None => Linker::new(engine),
    };
    let mut by_interface: BTreeMap<Option<&str>, Vec<&ComponentImportSpec>> = BTreeMap::new();
    for spec in specs {
        by_interface
            .entry(spec.path.interface.as_deref())
            .or_default()
            .push(spec);
    }
    for (name, item) in imports.imports(engine) {
        if let ComponentItem::ComponentInstance(_) = item.ty {
            let implemented = by_interface.contains_key(&Some(name));
            if is_wasi_interface(name) && !implemented {
                if wasi.is_none() {
                    return Err(WbError::new(
                        Kind::Link,
                        format!(
                            "the component imports WASI ({name}), but it was not given a WASI \
                             context: pass wasi: options (Wasmbeam.Wasi.Options)"
                        ),
                    ));
                }
                // Left to the WASI linker, which matches any 0.2.x version
                // (an empty instance of the exact name would hide it).
                continue;
            }
            by_interface.entry(Some(name)).or_default();
        }
    }
    // One resource type per host resource and link, told apart by a
    // number (Wasmtime's dynamic host resource types).
    let host_types: Vec<(*const ComponentImportSpec, u32)> = specs
        .iter()
        .filter(|s| s.resource)
        .map(|s| {
            let t = NEXT_HOST_RESOURCE_TYPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (s as *const ComponentImportSpec, t)
        })
        .collect();
    let all_host_types: Arc<[u32]> = host_types.iter().map(|(_, t)| *t).collect();
    let link_error = |path: &ItemPath, e: wasmtime::Error| {
        WbError::new(
            Kind::Link,
            format!("import {path}: {}", crate::driver::error::chain_message(&e)),
        )
    };
    for (interface, specs) in by_interface {
        let mut root = linker.root();
        let mut instance = match interface {
            Some(name) => root.instance(name).map_err(|e| {
                let path = ItemPath {
                    interface: Some(name.to_string()),
                    name: String::new(),
                };
                link_error(&path, e)
            })?,
            None => root,
        };
        for spec in specs {
            let import = spec.import.clone();
            if spec.resource {
                let t = host_types
                    .iter()
                    .find(|(p, _)| std::ptr::eq(*p, spec))
                    .map_or(0, |(_, t)| *t);
                instance
                    .resource_async(
                        &spec.path.name,
                        wasmtime::component::ResourceType::host_dynamic(t),
                        move |store, rep| Box::new(host_resource_drop(store, rep, import.clone())),
                    )
                    .map_err(|e| link_error(&spec.path, e))?;
                continue;
            }
            let types = spec.params.clone();
            let host_types = all_host_types.clone();
            instance
                .func_new_async(&spec.path.name, move |store, ty, params, results| {
                    Box::new(component_host_call(
                        store,
                        ty,
                        params,
                        types.clone(),
                        results,
                        import.clone(),
                        host_types.clone(),
                    ))
                })
                .map_err(|e| link_error(&spec.path, e))?;
        }
    }
    Ok(linker)
}

/// Whether `name` is an interface of WASI (`wasi:cli/stdin@0.2.0`, ...).
pub fn is_wasi_interface(name: &str) -> bool {
    name.starts_with("wasi:")
}

/// Wasmtime's WASI preview 2 interfaces, linked once per engine.
fn wasi_linker(core: &EngineCore) -> WbResult<&Linker<StoreData>> {
    core.wasi_component_linker.get_or_try_init(|| {
        let mut linker = Linker::new(&core.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| {
            WbError::new(
                Kind::Link,
                format!(
                    "cannot link WASI preview 2: {}",
                    crate::driver::error::chain_message(&e)
                ),
            )
        })?;
        Ok(linker)
    })
}

/// An exported function and its types, found in `instance`.
pub fn export_func(
    mut store: impl AsContextMut,
    component: &Component,
    instance: &Instance,
    path: &ItemPath,
) -> WbResult<(Func, Arc<FuncTypes>)> {
    let not_found = || WbError::new(Kind::NotFound, format!("no exported function {path}"));
    let index = match &path.interface {
        Some(interface) => {
            let parent = component
                .get_export_index(None, interface)
                .ok_or_else(not_found)?;
            component
                .get_export_index(Some(&parent), &path.name)
                .ok_or_else(not_found)?
        }
        None => component
            .get_export_index(None, &path.name)
            .ok_or_else(not_found)?,
    };
    let func = instance.get_func(&mut store, index).ok_or_else(not_found)?;
    let types = Arc::new(FuncTypes::of(&func.ty(&store)));
    Ok((func, types))
}

/// The run that instantiates `component` with `linker`'s host functions.
pub fn instantiate_future(
    mut store: WStore,
    linker: Linker<StoreData>,
    component: Component,
    attached: Arc<dyn Any + Send + Sync>,
) -> RunFuture {
    Box::pin(async move {
        let result = linker
            .instantiate_async(&mut store, &component)
            .await
            .map(|instance| Outcome::ComponentInstance(instance, attached));
        (store, result)
    })
}

/// Links `component` with `specs` once (Wasmtime's `InstancePre`): each
/// instantiation from it then only creates the instance.
pub fn link(
    engine: &Engine,
    component: &Component,
    specs: &[ComponentImportSpec],
    wasi: Option<&EngineCore>,
) -> WbResult<InstancePre<StoreData>> {
    linker(engine, component, specs, wasi)?
        .instantiate_pre(component)
        .map_err(|e| WbError::new(Kind::Link, crate::driver::error::chain_message(&e)))
}

/// The run that instantiates a linked component.
pub fn instantiate_pre_future(
    mut store: WStore,
    pre: InstancePre<StoreData>,
    attached: Arc<dyn Any + Send + Sync>,
) -> RunFuture {
    Box::pin(async move {
        let result = pre
            .instantiate_async(&mut store)
            .await
            .map(|instance| Outcome::ComponentInstance(instance, attached));
        (store, result)
    })
}

/// The run that calls `func` with `params`: first it drops the guest
/// resources that Elixir let go of since the last call (their
/// destructors are guest code; a failing one is left for the guest to
/// report on its next use).
pub fn call_future(
    mut store: WStore,
    func: Func,
    params: Vec<Val>,
    result: Option<Type>,
    dropped: Vec<ResourceAny>,
) -> RunFuture {
    Box::pin(async move {
        for resource in dropped {
            let _ = resource.resource_drop_async(&mut store).await;
        }
        let mut results = vec![Val::Bool(false); usize::from(result.is_some())];
        let outcome = func
            .call_async(&mut store, &params, &mut results)
            .await
            .map(|()| Outcome::ComponentValue(result.and_then(|ty| Some((results.pop()?, ty)))))
            .map_err(GuestFault::mark);
        (store, outcome)
    })
}

/// The run that drops a guest resource (its destructor is guest code).
pub fn drop_future(mut store: WStore, resource: ResourceAny) -> RunFuture {
    Box::pin(async move {
        let outcome = resource
            .resource_drop_async(&mut store)
            .await
            .map(|()| Outcome::ComponentValue(None))
            .map_err(GuestFault::mark);
        (store, outcome)
    })
}

/// The run that calls a function of [`FastShape`] `shape` with `input`
/// (UTF-8 already checked for a `string` parameter).
pub fn fast_call_future(
    mut store: WStore,
    func: Func,
    shape: FastShape,
    input: Vec<u8>,
    dropped: Vec<ResourceAny>,
) -> RunFuture {
    Box::pin(async move {
        for resource in dropped {
            let _ = resource.resource_drop_async(&mut store).await;
        }
        let outcome = fast_call(&mut store, func, shape, input)
            .await
            .map_err(GuestFault::mark);
        (store, outcome)
    })
}

async fn fast_call(
    store: &mut WStore,
    func: Func,
    shape: FastShape,
    input: Vec<u8>,
) -> wasmtime::Result<Outcome> {
    use BytesKind::{List, String as Str};
    let text = |input: Vec<u8>| {
        std::string::String::from_utf8(input)
            .map_err(|_| wasmtime::Error::msg("a string argument is not UTF-8"))
    };
    let none = |()| Outcome::ComponentValue(None);
    Ok(match (shape.param, shape.result) {
        (List, None) => func
            .typed::<(Vec<u8>,), ()>(&*store)?
            .call_async(&mut *store, (input,))
            .await
            .map(none)?,
        (List, Some(List)) => {
            let (out,) = func
                .typed::<(Vec<u8>,), (Vec<u8>,)>(&*store)?
                .call_async(&mut *store, (input,))
                .await?;
            Outcome::ComponentBytes(out)
        }
        (List, Some(Str)) => {
            let (out,) = func
                .typed::<(Vec<u8>,), (std::string::String,)>(&*store)?
                .call_async(&mut *store, (input,))
                .await?;
            Outcome::ComponentBytes(out.into_bytes())
        }
        (Str, None) => func
            .typed::<(std::string::String,), ()>(&*store)?
            .call_async(&mut *store, (text(input)?,))
            .await
            .map(none)?,
        (Str, Some(List)) => {
            let (out,) = func
                .typed::<(std::string::String,), (Vec<u8>,)>(&*store)?
                .call_async(&mut *store, (text(input)?,))
                .await?;
            Outcome::ComponentBytes(out)
        }
        (Str, Some(Str)) => {
            let (out,) = func
                .typed::<(std::string::String,), (std::string::String,)>(&*store)?
                .call_async(&mut *store, (text(input)?,))
                .await?;
            Outcome::ComponentBytes(out.into_bytes())
        }
    })
}
