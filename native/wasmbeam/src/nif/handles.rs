//! Handles as Elixir structs: `%Wasmbeam.Func{}`, `%Wasmbeam.Memory{}`,
//! `%Wasmbeam.Global{}`, `%Wasmbeam.Table{}`, `%Wasmbeam.Tag{}`.

use crate::nif::types::{ref_type_atom, val_type_atom};
use crate::resources::atoms;
use crate::resources::handles::{
    FuncResource, GlobalResource, MemoryResource, TableResource, TagResource,
};
use crate::resources::store::StoreResource;
use rustler::{Atom, Encoder, Env, ResourceArc, Term};
use std::sync::Arc;
use wasmbeam_runtime::domain::signature::Signature;
use wasmbeam_runtime::driver::values::FuncSig;
use wasmtime::{Func, Global, GlobalType, Memory, Mutability, Table, TableType, Tag, ValType};

fn atoms_of(types: &[ValType]) -> Vec<Atom> {
    types.iter().map(val_type_atom).collect()
}

/// `%Wasmbeam.Func{ref: ..., name: ..., store: ..., params: [...], results: [...]}`
pub fn encode_func<'a>(
    env: Env<'a>,
    resource: ResourceArc<FuncResource>,
    name: Option<&str>,
) -> Term<'a> {
    let types = &resource.sig.types;
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Func",
        &[
            (atoms::name(), name.encode(env)),
            (atoms::store(), resource.store.encode(env)),
            (atoms::params(), atoms_of(&types.params).encode(env)),
            (atoms::results(), atoms_of(&types.results).encode(env)),
            (atoms::r#ref(), resource.encode(env)),
        ],
    )
}

/// A funcref that came out of the guest (a result, a table element).
pub fn encode_anonymous_func<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    func: Func,
    types: Arc<FuncSig>,
) -> Term<'a> {
    let resource = ResourceArc::new(FuncResource {
        store: store.clone(),
        func,
        sig: Arc::new(Signature::untyped(types)),
    });
    encode_func(env, resource, None)
}

/// `%Wasmbeam.Memory{ref: ..., name: ...}`
pub fn encode_memory<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    memory: Memory,
    name: &str,
) -> Term<'a> {
    let r = ResourceArc::new(MemoryResource { store, memory });
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Memory",
        &[
            (atoms::r#ref(), r.encode(env)),
            (atoms::name(), name.encode(env)),
        ],
    )
}

/// `%Wasmbeam.Global{ref: ..., name: ..., type: :i32, mutable: true}`
pub fn encode_global<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    global: Global,
    ty: &GlobalType,
    name: &str,
) -> Term<'a> {
    let mutable = ty.mutability() == Mutability::Var;
    let content = val_type_atom(ty.content());
    let r = ResourceArc::new(GlobalResource {
        store,
        global,
        ty: ty.clone(),
    });
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Global",
        &[
            (atoms::r#ref(), r.encode(env)),
            (atoms::name(), name.encode(env)),
            (atoms::r#type(), content.encode(env)),
            (atoms::mutable(), mutable.encode(env)),
        ],
    )
}

/// `%Wasmbeam.Table{ref: ..., name: ..., element: :funcref}`
pub fn encode_table<'a>(
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

/// `%Wasmbeam.Tag{ref: ..., name: ..., params: [...]}`
pub fn encode_tag<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    tag: Tag,
    params: &[ValType],
    name: &str,
) -> Term<'a> {
    let r = ResourceArc::new(TagResource { store, tag });
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Tag",
        &[
            (atoms::r#ref(), r.encode(env)),
            (atoms::name(), name.encode(env)),
            (atoms::params(), atoms_of(params).encode(env)),
        ],
    )
}
