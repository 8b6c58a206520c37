//! Function signatures, read once per export, and how a call of a function
//! becomes a run: through a typed fast path where the signature has one,
//! else through Wasmtime's general `call_async`.

use crate::domain::typed::{fast_call, FastCall};
use crate::driver::store::{Outcome, RunFuture, RunResult, WStore};
use crate::driver::values::{arg_to_val, val_to_out, Args, FuncSig};
use std::sync::Arc;
use wasmtime::{Func, RootScope, Val};

/// A function's types, and its typed path if it has one.
pub struct Signature {
    pub types: Arc<FuncSig>,
    fast: Option<Arc<dyn FastCall>>,
}

impl Signature {
    /// The signature of `func`, with a typed path when its types allow.
    pub fn of(func: &Func, store: impl wasmtime::AsContext) -> Signature {
        let types = FuncSig::of(func, &store);
        let fast = fast_call(func, &store, &types.params, &types.results);
        Signature {
            types: Arc::new(types),
            fast,
        }
    }

    /// A signature without a typed path (a funcref that came out of the
    /// guest: its types were read when it did).
    pub fn untyped(types: Arc<FuncSig>) -> Signature {
        Signature { types, fast: None }
    }

    pub fn params(&self) -> &[wasmtime::ValType] {
        &self.types.params
    }

    /// The run of a call of `func` with `args` (decoded against
    /// [`Signature::params`]).
    pub fn run(&self, func: Func, store: WStore, mut args: Args) -> RunFuture {
        self.run_taking(func, store, &mut args)
    }

    /// [`Signature::run`] with the arguments where the caller decoded
    /// them: the typed path reads them in place, the untyped one takes
    /// them (a call's hot path moves no argument vector around).
    #[inline]
    pub fn run_taking(&self, func: Func, store: WStore, args: &mut Args) -> RunFuture {
        if let Some(fast) = &self.fast {
            return fast.run(store, args);
        }
        let args = std::mem::take(args);
        let results = self.types.results.len();
        let mut store = store;
        Box::pin(async move {
            let result = run_func(&mut store, func, args, results).await;
            (store, result)
        })
    }
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
