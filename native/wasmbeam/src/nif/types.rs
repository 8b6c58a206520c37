//! Wasm types as Elixir terms:
//! value types are atoms (`:i32`, `:funcref`, ...); extern types are tagged
//! tuples (`{:func, params, results}`, `{:memory, %{...}}`, `{:table, %{...}}`,
//! `{:global, type, :const | :var}`, `{:tag, params}`).

use crate::resources::atoms;
use rustler::{Atom, Encoder, Env, Term};
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmtime::{
    ExternType, FuncType, GlobalType, HeapType, MemoryType, Mutability, RefType, TableType, ValType,
};

pub fn ref_type_atom(r: &RefType) -> rustler::Atom {
    match r.heap_type() {
        HeapType::Func | HeapType::ConcreteFunc(_) | HeapType::NoFunc => atoms::funcref(),
        HeapType::Extern | HeapType::NoExtern => atoms::externref(),
        HeapType::Exn | HeapType::ConcreteExn(_) | HeapType::NoExn => atoms::exnref(),
        HeapType::Cont | HeapType::ConcreteCont(_) | HeapType::NoCont => atoms::contref(),
        _ => atoms::anyref(),
    }
}

/// The value types Elixir can name, both ways: the one table.
fn named_val_types() -> [(Atom, ValType); 7] {
    [
        (atoms::i32(), ValType::I32),
        (atoms::i64(), ValType::I64),
        (atoms::f32(), ValType::F32),
        (atoms::f64(), ValType::F64),
        (atoms::v128(), ValType::V128),
        (atoms::funcref(), ValType::FUNCREF),
        (atoms::externref(), ValType::EXTERNREF),
    ]
}

/// The value type an atom names.
pub fn parse_val_type(atom: Atom) -> WbResult<ValType> {
    named_val_types()
        .into_iter()
        .find(|(name, _)| *name == atom)
        .map(|(_, ty)| ty)
        .ok_or_else(|| WbError::new(Kind::Argument, format!("unknown value type {atom:?}")))
}

/// A list of value-type atoms.
pub fn parse_val_types(term: Term) -> WbResult<Vec<ValType>> {
    let atoms: Vec<Atom> = term
        .decode()
        .map_err(|_| WbError::new(Kind::Argument, "value types must be a list of atoms"))?;
    atoms.into_iter().map(parse_val_type).collect()
}

pub fn val_type_atom(t: &ValType) -> rustler::Atom {
    match t {
        ValType::I32 => atoms::i32(),
        ValType::I64 => atoms::i64(),
        ValType::F32 => atoms::f32(),
        ValType::F64 => atoms::f64(),
        ValType::V128 => atoms::v128(),
        ValType::Ref(r) => ref_type_atom(r),
    }
}

fn val_types<'a>(env: Env<'a>, types: impl Iterator<Item = ValType>) -> Term<'a> {
    types
        .map(|t| val_type_atom(&t))
        .collect::<Vec<_>>()
        .encode(env)
}

pub fn func_type<'a>(env: Env<'a>, t: &FuncType) -> Term<'a> {
    (
        atoms::func(),
        val_types(env, t.params()),
        val_types(env, t.results()),
    )
        .encode(env)
}

fn map<'a>(env: Env<'a>, pairs: &[(rustler::Atom, Term<'a>)]) -> Term<'a> {
    let pairs: Vec<(Term<'a>, Term<'a>)> = pairs.iter().map(|(k, v)| (k.encode(env), *v)).collect();
    Term::map_from_pairs(env, &pairs).expect("distinct keys")
}

pub fn memory_type<'a>(env: Env<'a>, t: &MemoryType) -> Term<'a> {
    let info = map(
        env,
        &[
            (atoms::min(), t.minimum().encode(env)),
            (atoms::max(), t.maximum().encode(env)),
            (atoms::memory64(), t.is_64().encode(env)),
            (atoms::shared(), t.is_shared().encode(env)),
            (atoms::page_size(), t.page_size().encode(env)),
        ],
    );
    (atoms::memory(), info).encode(env)
}

pub fn table_type<'a>(env: Env<'a>, t: &TableType) -> Term<'a> {
    let info = map(
        env,
        &[
            (atoms::element(), ref_type_atom(t.element()).encode(env)),
            (atoms::min(), t.minimum().encode(env)),
            (atoms::max(), t.maximum().encode(env)),
        ],
    );
    (atoms::table(), info).encode(env)
}

pub fn global_type<'a>(env: Env<'a>, t: &GlobalType) -> Term<'a> {
    let mutability = match t.mutability() {
        Mutability::Const => atoms::r#const(),
        Mutability::Var => atoms::var(),
    };
    (atoms::global(), val_type_atom(t.content()), mutability).encode(env)
}

pub fn extern_type<'a>(env: Env<'a>, t: &ExternType) -> Term<'a> {
    match t {
        ExternType::Func(f) => func_type(env, f),
        ExternType::Memory(m) => memory_type(env, m),
        ExternType::Table(t) => table_type(env, t),
        ExternType::Global(g) => global_type(env, g),
        ExternType::Tag(tag) => (atoms::tag(), val_types(env, tag.ty().params())).encode(env),
    }
}
