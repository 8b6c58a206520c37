//! Function handles: an export resolved once, called many times without a
//! lookup by name.

use crate::atoms;
use crate::error::{reply, Kind, WbError};
use crate::store::{start, CallOptions, Outcome, RunResult, StoreResource, WStore};
use crate::typed::{fast_call, FastCall};
use crate::types::val_type_atom;
use crate::values::{arg_to_val, decode_args, val_to_out, Args};
use rustler::{Atom, Encoder, Env, ResourceArc, Term};
use std::sync::Arc;
use wasmtime::{Func, RootScope, Val, ValType};

pub struct FuncResource {
    pub store: ResourceArc<StoreResource>,
    pub func: Func,
    pub sig: Arc<Signature>,
}

#[rustler::resource_impl]
impl rustler::Resource for FuncResource {}

/// A function's parameter and result types, read once from the store.
pub struct Signature {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
    /// A typed path for calls, for the signatures `crate::typed` covers.
    fast: Option<Arc<dyn FastCall>>,
}

impl Signature {
    pub fn of(func: &Func, store: impl wasmtime::AsContext) -> Signature {
        let ty = func.ty(&store);
        let params: Vec<ValType> = ty.params().collect();
        let results: Vec<ValType> = ty.results().collect();
        let fast = fast_call(func, &store, &params, &results);
        Signature {
            params,
            results,
            fast,
        }
    }
}

fn atoms_of(env: Env, types: &[ValType]) -> Vec<Atom> {
    let _ = env;
    types.iter().map(val_type_atom).collect()
}

/// `%Wasmbeam.Func{ref: ..., name: ..., params: [...], results: [...]}`
pub fn encode_func<'a>(
    env: Env<'a>,
    resource: ResourceArc<FuncResource>,
    name: Option<&str>,
) -> Term<'a> {
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Func",
        &[
            (atoms::r#ref(), resource.encode(env)),
            (atoms::name(), name.encode(env)),
            (atoms::store(), resource.store.encode(env)),
            (
                atoms::params(),
                atoms_of(env, &resource.sig.params).encode(env),
            ),
            (
                atoms::results(),
                atoms_of(env, &resource.sig.results).encode(env),
            ),
        ],
    )
}

/// A funcref that came out of the guest (a result, a table element).
pub fn encode_anonymous_func<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    func: Func,
    sig: Arc<Signature>,
) -> Term<'a> {
    let resource = ResourceArc::new(FuncResource {
        store: store.clone(),
        func,
        sig,
    });
    encode_func(env, resource, None)
}

async fn run_func(store: &mut WStore, func: Func, args: Args, results: usize) -> RunResult {
    let mut scope = RootScope::new(store);
    let mut params = Vec::with_capacity(args.len());
    for arg in args {
        params.push(arg_to_val(arg, &mut scope)?);
    }
    let mut out = vec![Val::I32(0); results];
    func.call_async(&mut scope, &params, &mut out).await?;
    Ok(Outcome::Values(
        out.into_iter().map(|v| val_to_out(v, &mut scope)).collect(),
    ))
}

/// Decodes the arguments and starts the call (see `store::start`).
pub fn call<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    func: Func,
    sig: &Signature,
    args: Term<'a>,
    opts: CallOptions,
) -> Term<'a> {
    if let Some(fast) = &sig.fast {
        return fast.call(env, store, &opts, args);
    }
    let args = match decode_args(args, &sig.params, store) {
        Ok(args) => args,
        Err(e) => return reply::<()>(env, Err(e)),
    };
    let results = sig.results.len();
    start(env, store, &opts, move |mut wstore| {
        Box::pin(async move {
            let result = run_func(&mut wstore, func, args, results).await;
            (wstore, result)
        })
    })
}

#[rustler::nif]
fn func_call<'a>(
    env: Env<'a>,
    func: ResourceArc<FuncResource>,
    arguments: Term<'a>,
    options: CallOptions,
) -> Term<'a> {
    call(env, &func.store, func.func, &func.sig, arguments, options)
}

pub fn not_a_function(name: &str) -> WbError {
    WbError::new(
        Kind::NotFound,
        format!("no exported function named {name:?}"),
    )
}
