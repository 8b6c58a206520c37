//! Linked modules: a module whose imports were resolved once (Wasmtime's
//! `InstancePre`), so that each instantiation only creates the instance.
//!
//! Only imports that belong to no store can be linked ahead: host functions
//! (their handlers are kept in the linked module, and each call reaches the
//! slot of the store it runs in through the store's data) and WASI preview
//! 1 (each store brings its own context).

use crate::engine::EngineResource;
use crate::error::{reply, Kind, WbError, WbResult};
use crate::host::{host_call, Handlers, HostImport};
use crate::instance::parse_val_type;
use crate::module::ModuleResource;
use crate::store::{start, CallOptions, Outcome, StoreData, StoreResource};
use rustler::{Atom, Env, ResourceArc, Term};
use std::sync::Arc;
use wasmtime::{FuncType, InstancePre, Linker, ValType};

pub struct LinkedResource {
    pub engine: ResourceArc<EngineResource>,
    pub module: ResourceArc<ModuleResource>,
    pre: InstancePre<StoreData>,
    /// Keeps the host functions' handlers alive as long as the link.
    _handlers: Arc<Handlers>,
    /// Whether the module's WASI imports come from Wasmtime's WASI.
    pub wasi: bool,
}

#[rustler::resource_impl]
impl rustler::Resource for LinkedResource {}

fn link_error(message: impl Into<String>) -> WbError {
    WbError::new(Kind::Link, message)
}

fn types(term: Term) -> WbResult<Vec<ValType>> {
    let atoms: Vec<Atom> = term
        .decode()
        .map_err(|_| WbError::new(Kind::Argument, "value types must be a list of atoms"))?;
    atoms.into_iter().map(parse_val_type).collect()
}

fn link(module: &ResourceArc<ModuleResource>, imports: &[Term]) -> WbResult<LinkedResource> {
    use crate::atoms as a;
    let engine = &module.engine;
    let mut linker: Linker<StoreData> = Linker::new(&engine.engine);
    let handlers = Arc::new(Handlers::default());
    let declared: Vec<wasmtime::ImportType> = module.module.imports().collect();
    if declared.len() != imports.len() {
        return Err(WbError::new(
            Kind::Argument,
            "one resolved import per import of the module",
        ));
    }
    let wasi = imports.iter().any(|t| {
        rustler::types::tuple::get_tuple(*t)
            .ok()
            .and_then(|items| items.first().and_then(|x| x.decode::<Atom>().ok()))
            == Some(a::wasi())
    });
    if wasi {
        // WASI first; the host functions defined below replace single WASI
        // functions that the import map overrides.
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, crate::wasi::context)
            .map_err(|e| link_error(e.to_string()))?;
        linker.allow_shadowing(true);
    }
    for (term, import) in imports.iter().zip(&declared) {
        let bad = || {
            WbError::new(
                Kind::Argument,
                format!("not a resolved import: {}", crate::inspect::inspect(*term)),
            )
        };
        let items = rustler::types::tuple::get_tuple(*term).map_err(|_| bad())?;
        let tag: Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
        match (tag, items.len()) {
            (t, 5) if t == a::define_func() => {
                let name: String = items[1].decode().map_err(|_| bad())?;
                let params = types(items[2])?;
                let results = types(items[3])?;
                let host = HostImport::new(&handlers, name, results.clone(), items[4]);
                let (module_name, name) = (import.module(), import.name());
                let linked = crate::typed::link_host_func(
                    &mut linker,
                    module_name,
                    name,
                    &params,
                    &results,
                    &host,
                )
                .unwrap_or_else(|| {
                    let ty = FuncType::new(&engine.engine, params, results);
                    linker
                        .func_new_async(module_name, name, ty, move |c, p, r| {
                            Box::new(host_call(c, p, r, host.clone()))
                        })
                        .map(|_| ())
                });
                linked.map_err(|e| link_error(crate::error::chain_message(&e)))?;
            }
            (t, 3) if t == a::wasi() => {}
            _ => {
                return Err(link_error(format!(
                    "import {:?} {:?}: a linked module can take only host functions and WASI \
                     (exports of instances and defined globals, memories and tables belong to \
                     one store: use Wasmbeam.Instance.new/3)",
                    import.module(),
                    import.name()
                )))
            }
        }
    }
    let pre = linker
        .instantiate_pre(&module.module)
        .map_err(|e| link_error(crate::error::chain_message(&e)))?;
    Ok(LinkedResource {
        engine: engine.clone(),
        module: module.clone(),
        pre,
        _handlers: handlers,
        wasi,
    })
}

#[rustler::nif]
fn linked_new<'a>(
    env: Env<'a>,
    module: ResourceArc<ModuleResource>,
    imports: Vec<Term<'a>>,
) -> Term<'a> {
    reply(
        env,
        crate::error::guard(|| link(&module, &imports).map(ResourceArc::new)),
    )
}

/// Instantiates a linked module into `store` (see `store::start`).
#[rustler::nif]
fn linked_instantiate(
    env: Env,
    store: ResourceArc<StoreResource>,
    linked: ResourceArc<LinkedResource>,
    options: CallOptions,
) -> Term {
    if !wasmtime::Engine::same(&linked.engine.engine, &store.engine.engine) {
        return reply::<()>(
            env,
            Err(link_error(
                "the module was linked by another engine than the store's",
            )),
        );
    }
    if linked.wasi && store.wasi.get().is_none() {
        return reply::<()>(
            env,
            Err(link_error(
                "the linked module imports WASI, but the store has no WASI context (pass wasi: options)",
            )),
        );
    }
    let pre = linked.pre.clone();
    let module = linked.module.clone();
    start(env, &store, &options, move |mut wstore| {
        Box::pin(async move {
            let result = pre
                .instantiate_async(&mut wstore)
                .await
                .map(|instance| Outcome::Instance(instance, module));
            (wstore, result)
        })
    })
}
