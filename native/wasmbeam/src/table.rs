//! Tables: size and element reads.

use crate::atoms;
use crate::error::{reply, Kind, WbError};
use crate::store::StoreResource;
use crate::types::ref_type_atom;
use crate::values::{encode_out, ref_to_out};
use rustler::{Encoder, Env, ResourceArc, Term};
use wasmtime::{RootScope, Table, TableType};

pub struct TableResource {
    pub store: ResourceArc<StoreResource>,
    pub table: Table,
}

#[rustler::resource_impl]
impl rustler::Resource for TableResource {}

/// `%Wasmbeam.Table{ref: ..., name: ..., element: :funcref}`
pub fn encode<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    table: Table,
    ty: &TableType,
    name: &str,
) -> Term<'a> {
    let element = ref_type_atom(ty.element());
    let r = ResourceArc::new(TableResource { store, table });
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Table",
        &[
            (atoms::r#ref(), r.encode(env)),
            (atoms::name(), name.encode(env)),
            (atoms::element(), element.encode(env)),
        ],
    )
}

#[rustler::nif]
fn table_size(env: Env, table: ResourceArc<TableResource>) -> Term {
    reply(env, table.store.with_idle(|s| Ok(table.table.size(&*s))))
}

#[rustler::nif]
fn table_get(env: Env, table: ResourceArc<TableResource>, index: u64) -> Term {
    let out = table.store.with_idle(|s| {
        let mut scope = RootScope::new(&mut *s);
        let size = table.table.size(&scope);
        let element = table.table.get(&mut scope, index).ok_or_else(|| {
            WbError::new(
                Kind::Argument,
                format!("index {index} is out of bounds for a table of {size} element(s)"),
            )
        })?;
        Ok(ref_to_out(element, &mut scope))
    });
    reply(env, out.map(|o| encode_out(env, &o, &table.store)))
}
