//! Globals: read, and write when mutable.

use crate::atoms;
use crate::error::{reply, Kind, WbError};
use crate::store::StoreResource;
use crate::types::val_type_atom;
use crate::values::{arg_to_val, decode_arg, encode_out, val_to_out};
use rustler::{Encoder, Env, ResourceArc, Term};
use wasmtime::{Global, GlobalType, Mutability, RootScope};

pub struct GlobalResource {
    pub store: ResourceArc<StoreResource>,
    pub global: Global,
    pub ty: GlobalType,
}

#[rustler::resource_impl]
impl rustler::Resource for GlobalResource {}

/// `%Wasmbeam.Global{ref: ..., name: ..., type: :i32, mutable: true}`
pub fn encode<'a>(
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

#[rustler::nif]
fn global_get(env: Env, global: ResourceArc<GlobalResource>) -> Term {
    let out = global.store.with_idle(|s| {
        let mut scope = RootScope::new(&mut *s);
        let val = global.global.get(&mut scope);
        Ok(val_to_out(val, &mut scope))
    });
    reply(env, out.map(|o| encode_out(env, &o, &global.store)))
}

#[rustler::nif]
fn global_set<'a>(env: Env<'a>, global: ResourceArc<GlobalResource>, value: Term<'a>) -> Term<'a> {
    if global.ty.mutability() == Mutability::Const {
        return reply::<()>(
            env,
            Err(WbError::new(Kind::Argument, "the global is immutable")),
        );
    }
    let r = decode_arg(value, global.ty.content(), 0, &global.store).and_then(|arg| {
        global.store.with_idle(|s| {
            let mut scope = RootScope::new(&mut *s);
            arg_to_val(arg, &mut scope)
                .and_then(|val| global.global.set(&mut scope, val))
                .map_err(|e| WbError::new(Kind::Type, crate::error::chain_message(&e)))
        })
    });
    match r {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => reply::<()>(env, Err(e)),
    }
}
