//! Import bindings as `Wasmbeam.Imports` lists them, one per import of the
//! module in order, decoded into the domain's `ImportSpec`s: the one
//! decoder, for `Instance.new` and for linked modules alike.
//!
//! `{:func, ref}`, `{:memory, ref}`, `{:global, ref}`, `{:table, ref}`,
//! `{:tag, ref}` (exports of instances), `{:wasi, module, name}`,
//! `{:define_func, name, params, results, handler}`,
//! `{:define_global, type, mutable, value}`, `{:define_memory, min, max}`,
//! `{:define_table, element, min, max}`.

use crate::nif::error::bad_term;
use crate::nif::types::{parse_val_type, parse_val_types};
use crate::nif::values::decode_arg;
use crate::resources::atoms;
use crate::resources::handlers::Handlers;
use crate::resources::handles::{
    FuncResource, GlobalResource, MemoryResource, TableResource, TagResource,
};
use rustler::{Atom, ResourceArc, Term};
use std::sync::Arc;
use wasmbeam_runtime::domain::host_funcs::HostFuncSpec;
use wasmbeam_runtime::domain::imports::{precheck, ImportSpec};
use wasmbeam_runtime::driver::error::WbResult;
use wasmbeam_runtime::driver::host_slot::HostImport;

/// Decodes every binding of `module`'s imports and checks that each fits
/// its import; only then are host functions' handlers registered in
/// `handlers` (an equal handler registered before is reused), so a
/// binding that does not fit leaves no registration behind. `store_id` is
/// the store the bindings are for (0 for a link, which belongs to no store).
pub fn decode(
    list: Term,
    module: &wasmtime::Module,
    handlers: &Arc<Handlers>,
    store_id: u64,
) -> WbResult<Vec<ImportSpec>> {
    let not_a_list = || bad_term("imports must be a proper list", list);
    // The length first: iterating an improper list would stop early.
    list.list_length().map_err(|_| not_a_list())?;
    let terms: Vec<Term> = list.decode().map_err(|_| not_a_list())?;
    let mut handler_terms = Vec::new();
    let mut specs = terms
        .iter()
        .enumerate()
        .map(|(position, t)| decode_one(*t, position, store_id, &mut handler_terms))
        .collect::<WbResult<Vec<ImportSpec>>>()?;
    precheck(module, &specs)?;
    for (position, handler) in handler_terms {
        if let ImportSpec::DefineFunc(spec) = &mut specs[position] {
            let index = handlers.register(handler);
            let registry: Arc<dyn std::any::Any + Send + Sync> = handlers.clone();
            spec.import = HostImport::new(
                registry,
                handlers.id,
                index,
                spec.import.name(),
                &spec.results,
            );
            spec.registry = handlers.id;
            spec.index = index;
        }
    }
    Ok(specs)
}

/// One binding; a host function's handler is set aside in `handlers`
/// (with the binding's position) to be registered once all bindings fit.
fn decode_one<'a>(
    term: Term<'a>,
    position: usize,
    store_id: u64,
    handlers: &mut Vec<(usize, Term<'a>)>,
) -> WbResult<ImportSpec> {
    let bad = || bad_term("not a resolved import", term);
    let items = rustler::types::tuple::get_tuple(term).map_err(|_| bad())?;
    let tag: Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
    let at = |i: usize| items.get(i).copied().ok_or_else(bad);
    Ok(match (tag, items.len()) {
        (t, 2) if t == atoms::func() => {
            let f: ResourceArc<FuncResource> = at(1)?.decode().map_err(|_| bad())?;
            ImportSpec::Func(f.func, f.store.id())
        }
        (t, 2) if t == atoms::memory() => {
            let m: ResourceArc<MemoryResource> = at(1)?.decode().map_err(|_| bad())?;
            ImportSpec::Memory(m.memory, m.store.id())
        }
        (t, 2) if t == atoms::global() => {
            let g: ResourceArc<GlobalResource> = at(1)?.decode().map_err(|_| bad())?;
            ImportSpec::Global(g.global, g.store.id())
        }
        (t, 2) if t == atoms::table() => {
            let t: ResourceArc<TableResource> = at(1)?.decode().map_err(|_| bad())?;
            ImportSpec::Table(t.table, t.store.id())
        }
        (t, 2) if t == atoms::tag() => {
            let t: ResourceArc<TagResource> = at(1)?.decode().map_err(|_| bad())?;
            ImportSpec::Tag(t.tag, t.store.id())
        }
        (t, 3) if t == atoms::wasi() => {
            // The names come from the module's own import list.
            let _: String = at(1)?.decode().map_err(|_| bad())?;
            let _: String = at(2)?.decode().map_err(|_| bad())?;
            ImportSpec::Wasi
        }
        (t, 4) if t == atoms::define_global() => {
            let ty = parse_val_type(at(1)?.decode().map_err(|_| bad())?)?;
            let mutable: bool = at(2)?.decode().map_err(|_| bad())?;
            let value = decode_arg(at(3)?, &ty, 0, store_id)?;
            ImportSpec::DefineGlobal { ty, mutable, value }
        }
        (t, 5) if t == atoms::define_func() => {
            let name: String = at(1)?.decode().map_err(|_| bad())?;
            let params = parse_val_types(at(2)?)?;
            let results = parse_val_types(at(3)?)?;
            // Registered (and these placeholders replaced) by `decode`.
            handlers.push((position, at(4)?));
            ImportSpec::DefineFunc(HostFuncSpec {
                import: HostImport::new(Arc::new(()), 0, 0, &name, &results),
                registry: 0,
                index: 0,
                params,
                results,
            })
        }
        (t, 3) if t == atoms::define_memory() => ImportSpec::DefineMemory {
            min: at(1)?.decode().map_err(|_| bad())?,
            max: at(2)?.decode().map_err(|_| bad())?,
        },
        (t, 4) if t == atoms::define_table() => ImportSpec::DefineTable {
            element: parse_val_type(at(1)?.decode().map_err(|_| bad())?)?,
            min: at(2)?.decode().map_err(|_| bad())?,
            max: at(3)?.decode().map_err(|_| bad())?,
        },
        _ => return Err(bad()),
    })
}
