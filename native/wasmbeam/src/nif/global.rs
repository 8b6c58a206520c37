//! Globals: read, and write when mutable.

use crate::handle;
use crate::nif::error::{error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::values::{decode_arg, encode_out};
use crate::resources::atoms;
use crate::resources::handles::GlobalResource;
use rustler::{Encoder, Env, Term};
use wasmbeam_runtime::driver::error::{chain_message, Kind, WbError};
use wasmbeam_runtime::driver::values::{arg_to_val, val_to_out};
use wasmtime::{Mutability, RootScope};

#[rustler::nif]
fn global_get(env: Env, global: Handle<GlobalResource>) -> Term {
    let global = handle!(env, global, "global");
    guarded(env, || {
        let out = global.store.core.with_idle(|s| {
            let mut scope = RootScope::new(&mut *s);
            let val = global.global.get(&mut scope);
            Ok(val_to_out(val, &mut scope))
        });
        reply(env, out.map(|o| encode_out(env, &o, &global.store)))
    })
}

#[rustler::nif]
fn global_set<'a>(env: Env<'a>, global: Handle<GlobalResource>, value: Term<'a>) -> Term<'a> {
    let global = handle!(env, global, "global");
    guarded(env, || {
        if global.ty.mutability() == Mutability::Const {
            return error(
                env,
                &WbError::new(Kind::Argument, "the global is immutable"),
            );
        }
        let r = decode_arg(value, global.ty.content(), 0, global.store.id()).and_then(|arg| {
            global.store.core.with_idle(|s| {
                let mut scope = RootScope::new(&mut *s);
                arg_to_val(arg, &mut scope)
                    .and_then(|val| global.global.set(&mut scope, val))
                    .map_err(|e| WbError::new(Kind::Type, chain_message(&e)))
            })
        });
        match r {
            Ok(()) => atoms::ok().encode(env),
            Err(e) => error(env, &e),
        }
    })
}
