//! Calls: of an export by name (through its instance) or of a function
//! handle. Arguments are decoded against the signature, then the run
//! starts on the store (see `wasmbeam_runtime::driver::store`).

use crate::handle;
use crate::nif::error::{error, guarded};
use crate::nif::handle_arg::Handle;
use crate::nif::step::{driven_store, encode_begin, me};
use crate::nif::store::CallOptions;
use crate::nif::values::decode_args_into;
use crate::resources::handles::FuncResource;
use crate::resources::store::StoreResource;
use rustler::{Env, ResourceArc, Term};
use wasmbeam_runtime::domain::signature::Signature;
use wasmbeam_runtime::driver::values::Args;
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
    let mut decoded = Args::new();
    if let Err(e) = decode_args_into(args, sig.params(), store.id(), &mut decoded) {
        return error(env, &e);
    }
    let begin = store
        .core
        .start(me(env), &opts.run(), &store.notify(env), |wstore| {
            Ok(sig.run_taking(func, wstore, &mut decoded))
        });
    encode_begin(env, store, begin)
}

#[rustler::nif]
fn func_call<'a>(
    env: Env<'a>,
    func: Handle<FuncResource>,
    store: Handle<StoreResource>,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    let func = handle!(env, func, "function handle");
    let driven = handle!(env, store, "store");
    if let Err(e) = driven_store(&func.store, &driven) {
        return error(env, &e);
    }
    guarded(env, || {
        call(env, &func.store, func.func, &func.sig, arguments, &options)
    })
}
