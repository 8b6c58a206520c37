//! Calls: of an export by name (through its instance) or of a function
//! handle. Arguments are decoded against the signature, then the run
//! starts on the store (see `wasmbeam_runtime::driver::store`).

use crate::nif::error::{error, guarded};
use crate::nif::step::{encode_begin, me};
use crate::nif::store::CallOptions;
use crate::nif::values::decode_args;
use crate::resources::handles::FuncResource;
use crate::resources::store::StoreResource;
use rustler::{Env, ResourceArc, Term};
use wasmbeam_runtime::domain::signature::Signature;
use wasmtime::Func;

/// Decodes the arguments and starts the call.
pub fn call<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    func: Func,
    sig: &Signature,
    args: Term<'a>,
    opts: &CallOptions,
) -> Term<'a> {
    let args = match decode_args(args, sig.params(), store.id()) {
        Ok(args) => args,
        Err(e) => return error(env, &e),
    };
    let begin = store
        .core
        .start(me(env), &opts.run(), &store.notify(env), |wstore| {
            Ok(sig.run(func, wstore, args))
        });
    encode_begin(env, store, begin)
}

#[rustler::nif]
fn func_call<'a>(
    env: Env<'a>,
    func: ResourceArc<FuncResource>,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    guarded(env, || {
        call(env, &func.store, func.func, &func.sig, arguments, &options)
    })
}
