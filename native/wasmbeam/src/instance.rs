//! Instances: a module instantiated into a store, with its imports resolved.

use crate::error::{reply, Kind, WbError, WbResult};
use crate::func::{encode_func, not_a_function, FuncResource, Signature};
use crate::module::ModuleResource;
use crate::store::{start, CallOptions, Outcome, StoreResource, WStore};
use crate::values::{arg_to_val, decode_arg};
use parking_lot::Mutex;
use rustler::{Atom, Encoder, Env, ResourceArc, Term};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::{
    Extern, Func, Global, GlobalType, Instance, Memory, MemoryType, Mutability, Ref, RefType,
    RootScope, Table, TableType, Tag, ValType,
};

pub struct InstanceResource {
    pub store: ResourceArc<StoreResource>,
    pub instance: Instance,
    pub module: ResourceArc<ModuleResource>,
    /// Exported functions looked up by name so far, so that calls by name
    /// pay for the lookup once.
    funcs: Mutex<HashMap<String, (Func, Arc<Signature>)>>,
}

#[rustler::resource_impl]
impl rustler::Resource for InstanceResource {}

pub fn new_instance_resource(
    store: ResourceArc<StoreResource>,
    instance: Instance,
    module: ResourceArc<ModuleResource>,
) -> ResourceArc<InstanceResource> {
    ResourceArc::new(InstanceResource {
        store,
        instance,
        module,
        funcs: Mutex::new(HashMap::new()),
    })
}

impl InstanceResource {
    fn func(&self, name: &str) -> WbResult<(Func, Arc<Signature>)> {
        if let Some(found) = self.funcs.lock().get(name) {
            return Ok(found.clone());
        }
        let found = self.store.with_idle(|store| {
            let func = self
                .instance
                .get_func(&mut *store, name)
                .ok_or_else(|| not_a_function(name))?;
            Ok((func, Arc::new(Signature::of(&func, store))))
        })?;
        self.funcs.lock().insert(name.to_owned(), found.clone());
        Ok(found)
    }
}

pub fn parse_val_type(atom: Atom) -> WbResult<ValType> {
    use crate::atoms as a;
    Ok(match atom {
        t if t == a::i32() => ValType::I32,
        t if t == a::i64() => ValType::I64,
        t if t == a::f32() => ValType::F32,
        t if t == a::f64() => ValType::F64,
        t if t == a::v128() => ValType::V128,
        t if t == a::funcref() => ValType::FUNCREF,
        t if t == a::externref() => ValType::EXTERNREF,
        _ => {
            return Err(WbError::new(
                Kind::Argument,
                format!("unknown value type {atom:?}"),
            ))
        }
    })
}

fn same_store(store: &StoreResource, other: &StoreResource, what: &str) -> WbResult<()> {
    if store.id == other.id {
        Ok(())
    } else {
        Err(WbError::new(
            Kind::Link,
            format!("{what} belongs to another store; instantiate into the store it lives in"),
        ))
    }
}

/// One resolved import, as built by `Wasmbeam.Imports` in the module's
/// import order.
fn to_extern(term: Term, res: &StoreResource, store: &mut WStore) -> WbResult<Extern> {
    use crate::atoms as a;
    let bad = || {
        WbError::new(
            Kind::Argument,
            format!("not a resolved import: {}", crate::inspect::inspect(term)),
        )
    };
    let items = rustler::types::tuple::get_tuple(term).map_err(|_| bad())?;
    let tag: Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
    match (tag, items.len()) {
        (t, 2) if t == a::func() => {
            let f: ResourceArc<FuncResource> = items[1].decode().map_err(|_| bad())?;
            same_store(res, &f.store, "an imported function")?;
            Ok(Extern::Func(f.func))
        }
        (t, 2) if t == a::memory() => {
            let m: ResourceArc<crate::memory::MemoryResource> =
                items[1].decode().map_err(|_| bad())?;
            same_store(res, &m.store, "an imported memory")?;
            Ok(Extern::Memory(m.memory))
        }
        (t, 2) if t == a::global() => {
            let g: ResourceArc<crate::global::GlobalResource> =
                items[1].decode().map_err(|_| bad())?;
            same_store(res, &g.store, "an imported global")?;
            Ok(Extern::Global(g.global))
        }
        (t, 2) if t == a::table() => {
            let t: ResourceArc<crate::table::TableResource> =
                items[1].decode().map_err(|_| bad())?;
            same_store(res, &t.store, "an imported table")?;
            Ok(Extern::Table(t.table))
        }
        (t, 2) if t == a::tag() => {
            let tag: ResourceArc<TagResource> = items[1].decode().map_err(|_| bad())?;
            same_store(res, &tag.store, "an imported tag")?;
            Ok(Extern::Tag(tag.tag))
        }
        (t, 3) if t == a::wasi() => {
            let module: String = items[1].decode().map_err(|_| bad())?;
            let name: String = items[2].decode().map_err(|_| bad())?;
            crate::wasi::import(res, store, &module, &name)
        }
        (t, 4) if t == a::define_global() => {
            let ty = parse_val_type(items[1].decode().map_err(|_| bad())?)?;
            let mutable: bool = items[2].decode().map_err(|_| bad())?;
            let arg = decode_arg(items[3], &ty, 0, res)?;
            let mut scope = RootScope::new(&mut *store);
            let val = arg_to_val(arg, &mut scope).map_err(link_error)?;
            let mutability = if mutable {
                Mutability::Var
            } else {
                Mutability::Const
            };
            Global::new(&mut scope, GlobalType::new(ty, mutability), val)
                .map(Extern::Global)
                .map_err(link_error)
        }
        (t, 5) if t == a::define_func() => {
            let name: String = items[1].decode().map_err(|_| bad())?;
            let types = |i: usize| -> WbResult<Vec<ValType>> {
                let atoms: Vec<Atom> = items[i].decode().map_err(|_| bad())?;
                atoms.into_iter().map(parse_val_type).collect()
            };
            crate::host::define(store, &res.host, name, types(2)?, types(3)?, items[4])
                .map(Extern::Func)
        }
        (t, 3) if t == a::define_memory() => {
            let min: u32 = items[1].decode().map_err(|_| bad())?;
            let max: Option<u32> = items[2].decode().map_err(|_| bad())?;
            Memory::new(&mut *store, MemoryType::new(min, max))
                .map(Extern::Memory)
                .map_err(link_error)
        }
        (t, 4) if t == a::define_table() => {
            let elem = parse_val_type(items[1].decode().map_err(|_| bad())?)?;
            let min: u32 = items[2].decode().map_err(|_| bad())?;
            let max: Option<u32> = items[3].decode().map_err(|_| bad())?;
            let (ref_type, init) = match elem {
                ValType::Ref(r) if r.heap_type().is_extern() => {
                    (RefType::EXTERNREF, Ref::Extern(None))
                }
                ValType::Ref(_) => (RefType::FUNCREF, Ref::Func(None)),
                _ => return Err(WbError::new(Kind::Argument, "a table holds references")),
            };
            Table::new(&mut *store, TableType::new(ref_type, min, max), init)
                .map(Extern::Table)
                .map_err(link_error)
        }
        _ => Err(bad()),
    }
}

fn link_error(e: wasmtime::Error) -> WbError {
    let message = crate::error::chain_message(&e);
    WbError::new(crate::store::setup_error_kind(&message), message)
}

#[rustler::nif]
fn instance_new<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    module: ResourceArc<ModuleResource>,
    imports: Vec<Term<'a>>,
    options: CallOptions,
) -> Term<'a> {
    if !wasmtime::Engine::same(&module.engine.engine, &store.engine.engine) {
        return reply::<()>(
            env,
            Err(WbError::new(
                Kind::Link,
                "the module was compiled by another engine than the store's",
            )),
        );
    }
    let externs = store.with_idle(|wstore| {
        imports
            .iter()
            .map(|t| to_extern(*t, &store, wstore))
            .collect::<WbResult<Vec<Extern>>>()
    });
    let externs = match externs {
        Ok(externs) => externs,
        Err(e) if e.kind == Kind::Busy && options.wait => {
            return crate::store::wait_for(env, &store)
        }
        Err(e) => return reply::<()>(env, Err(e)),
    };
    start(env, &store, &options, move |mut wstore| {
        Box::pin(async move {
            let result = Instance::new_async(&mut wstore, &module.module, &externs)
                .await
                .map(|instance| Outcome::Instance(instance, module));
            (wstore, result)
        })
    })
}

#[rustler::nif]
fn instance_call<'a>(
    env: Env<'a>,
    instance: ResourceArc<InstanceResource>,
    name: &str,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    // `&str`: the name is read in place, not copied into a `String`.
    match instance.func(name) {
        Ok((func, sig)) => crate::func::call(env, &instance.store, func, &sig, arguments, options),
        Err(e) if e.kind == Kind::Busy && options.wait => {
            crate::store::wait_for(env, &instance.store)
        }
        Err(e) => reply::<()>(env, Err(e)),
    }
}

/// Looks up an export and returns its handle struct
/// (`%Wasmbeam.Func{}`, `%Wasmbeam.Memory{}`, `%Wasmbeam.Global{}`, `%Wasmbeam.Table{}`).
#[rustler::nif]
fn instance_export<'a>(
    env: Env<'a>,
    instance: ResourceArc<InstanceResource>,
    name: String,
) -> Term<'a> {
    let store = &instance.store;
    let found = store.with_idle(|wstore| {
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
        Export::Memory(m) => crate::memory::encode(env, store.clone(), m, &name),
        Export::Global(g, ty) => crate::global::encode(env, store.clone(), g, &ty, &name),
        Export::Table(t, ty) => crate::table::encode(env, store.clone(), t, &ty, &name),
        Export::Tag(t, params) => encode_tag(env, store.clone(), t, &params, &name),
    });
    reply(env, term)
}

enum Export {
    Func(Func, Arc<Signature>),
    Memory(Memory),
    Global(Global, GlobalType),
    Table(Table, TableType),
    Tag(Tag, Vec<ValType>),
}

/// An exception tag, exported so that other instances can import it.
pub struct TagResource {
    pub store: ResourceArc<StoreResource>,
    pub tag: Tag,
}

#[rustler::resource_impl]
impl rustler::Resource for TagResource {}

/// `%Wasmbeam.Tag{ref: ..., name: ..., params: [...]}`
fn encode_tag<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    tag: Tag,
    params: &[ValType],
    name: &str,
) -> Term<'a> {
    use crate::atoms;
    let params: Vec<Atom> = params.iter().map(crate::types::val_type_atom).collect();
    let r = ResourceArc::new(TagResource { store, tag });
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Tag",
        &[
            (atoms::r#ref(), r.encode(env)),
            (atoms::name(), name.encode(env)),
            (atoms::params(), params.encode(env)),
        ],
    )
}

/// The names of the exports, in order, with their types.
#[rustler::nif]
fn instance_exports(env: Env, instance: ResourceArc<InstanceResource>) -> Term {
    instance
        .module
        .module
        .exports()
        .map(|e| (e.name(), crate::types::extern_type(env, &e.ty())).encode(env))
        .collect::<Vec<_>>()
        .encode(env)
}
