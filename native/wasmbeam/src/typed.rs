//! Calls of the commonest signatures through Wasmtime's `TypedFunc`.
//!
//! `Func::call_async` checks every call's arguments against the function's
//! type, which it looks up in the engine's type registry (a lock and two
//! reference counts, twice per call): about as much as the rest of a short
//! call costs. A `TypedFunc` checks the type once, when it is made. Wasmbeam
//! makes one when it first resolves an export whose parameters (up to two)
//! and result (at most one) are all numbers, and calls through it; other
//! signatures take the general path. The arguments were already checked
//! against the signature when they were decoded.

use crate::store::{Outcome, RunFuture, WStore};
use crate::values::{Arg, Args, Out, Outs};
use std::sync::Arc;
use wasmtime::{AsContext, Func, TypedFunc, Val, ValType, WasmParams, WasmResults, WasmTy};

/// Starts a call of a function whose type was checked once.
pub trait FastCall: Send + Sync {
    fn start(&self, store: WStore, args: Args) -> RunFuture;
}

trait Scalar: WasmTy + Copy + Send + Sync + 'static {
    fn from_arg(arg: &Arg) -> Self;
    fn into_out(self) -> Out;
}

macro_rules! scalar {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Scalar for $t {
            fn from_arg(arg: &Arg) -> Self {
                match arg {
                    Arg::Val(Val::$variant(v)) => $to(*v),
                    // Decoding made the arguments match the signature.
                    _ => unreachable!("argument decoded against another type"),
                }
            }

            fn into_out(self) -> Out {
                Out::Val(Val::$variant($from(self)))
            }
        }
    };
}

scalar!(i32, I32, |v: i32| v, |v: i32| v);
scalar!(i64, I64, |v: i64| v, |v: i64| v);
scalar!(f32, F32, f32::from_bits, f32::to_bits);
scalar!(f64, F64, f64::from_bits, f64::to_bits);

trait Params: WasmParams + Send + Sync + 'static {
    fn from_args(args: &[Arg]) -> Self;
}

impl Params for () {
    fn from_args(_: &[Arg]) -> Self {}
}

impl<A: Scalar> Params for (A,) {
    fn from_args(args: &[Arg]) -> Self {
        (A::from_arg(&args[0]),)
    }
}

impl<A: Scalar, B: Scalar> Params for (A, B) {
    fn from_args(args: &[Arg]) -> Self {
        (A::from_arg(&args[0]), B::from_arg(&args[1]))
    }
}

trait Results: WasmResults + Send + Sync + 'static {
    fn into_outs(self) -> Outs;
}

impl Results for () {
    fn into_outs(self) -> Outs {
        Outs::new()
    }
}

impl<R: Scalar> Results for R {
    fn into_outs(self) -> Outs {
        smallvec::smallvec![self.into_out()]
    }
}

struct Typed<P, R>(TypedFunc<P, R>);

impl<P: Params, R: Results> FastCall for Typed<P, R> {
    fn start(&self, mut store: WStore, args: Args) -> RunFuture {
        let func = self.0.clone();
        let params = P::from_args(&args);
        Box::pin(async move {
            let result = func.call_async(&mut store, params).await;
            (store, result.map(|r| Outcome::Values(r.into_outs())))
        })
    }
}

fn typed<P: Params, R: Results>(func: &Func, store: impl AsContext) -> Option<Arc<dyn FastCall>> {
    let typed = func.typed::<P, R>(&store).ok()?;
    Some(Arc::new(Typed(typed)))
}

/// Runs `$body` with `$name` bound to the Rust type of the numeric `$ty`.
macro_rules! by_type {
    ($ty:expr, $name:ident, $body:expr) => {
        match $ty {
            ValType::I32 => {
                type $name = i32;
                $body
            }
            ValType::I64 => {
                type $name = i64;
                $body
            }
            ValType::F32 => {
                type $name = f32;
                $body
            }
            ValType::F64 => {
                type $name = f64;
                $body
            }
            _ => None,
        }
    };
}

fn with_results<P: Params>(
    func: &Func,
    store: impl AsContext,
    results: &[ValType],
) -> Option<Arc<dyn FastCall>> {
    match results {
        [] => typed::<P, ()>(func, store),
        [r] => by_type!(r, R, typed::<P, R>(func, store)),
        _ => None,
    }
}

/// A typed path for `func`, if its signature is one of those covered.
pub fn fast_call(
    func: &Func,
    store: impl AsContext,
    params: &[ValType],
    results: &[ValType],
) -> Option<Arc<dyn FastCall>> {
    match params {
        [] => with_results::<()>(func, store, results),
        [a] => by_type!(a, A, with_results::<(A,)>(func, store, results)),
        [a, b] => by_type!(
            a,
            A,
            by_type!(b, B, with_results::<(A, B)>(func, store, results))
        ),
        _ => None,
    }
}
