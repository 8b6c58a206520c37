//! Calls of the commonest signatures through Wasmtime's `TypedFunc`.
//!
//! `Func::call_async` checks every call's arguments against the function's
//! type, which it looks up in the engine's type registry (a lock and two
//! reference counts, twice per call): about as much as the rest of a short
//! call costs. A `TypedFunc` checks the type once, when it is made. Wasmbeam
//! makes one when it first resolves an export whose parameters (up to two)
//! and result (at most one) are all numbers, and calls through it; other
//! signatures take the general path. The arguments are decoded straight
//! into the Rust types of the parameters, with the same checks as the
//! general path's.

use crate::error::{reply, Kind, WbError, WbResult};
use crate::store::{start, CallOptions, Outcome, StoreResource};
use crate::values::{decode_arg, Arg, Out, Outs};
use rustler::{Env, ListIterator, ResourceArc, Term};
use std::sync::Arc;
use wasmtime::{AsContext, Func, TypedFunc, Val, ValType, WasmParams, WasmResults, WasmTy};

/// Calls a function whose type was checked once.
pub trait FastCall: Send + Sync {
    /// Decodes `args` (a list) against the signature and starts the call
    /// (see `store::start`).
    fn call<'a>(
        &self,
        env: Env<'a>,
        store: &ResourceArc<StoreResource>,
        opts: &CallOptions,
        args: Term<'a>,
    ) -> Term<'a>;
}

trait Scalar: WasmTy + Copy + Send + Sync + 'static {
    const TYPE: ValType;
    fn from_arg(arg: &Arg) -> Self;
    fn into_out(self) -> Out;

    fn decode(args: &mut ListIterator, position: usize, store: &StoreResource) -> WbResult<Self> {
        // The list's length was checked against the parameters.
        let term = args.next().expect("an argument per parameter");
        decode_arg(term, &Self::TYPE, position, store).map(|arg| Self::from_arg(&arg))
    }
}

macro_rules! scalar {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Scalar for $t {
            const TYPE: ValType = ValType::$variant;

            fn from_arg(arg: &Arg) -> Self {
                match arg {
                    Arg::Val(Val::$variant(v)) => $to(*v),
                    // `decode_arg` made it of this type.
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

trait Params: WasmParams + Sized + Send + Sync + 'static {
    const COUNT: usize;
    fn decode(args: &mut ListIterator, store: &StoreResource) -> WbResult<Self>;
}

impl Params for () {
    const COUNT: usize = 0;
    fn decode(_: &mut ListIterator, _: &StoreResource) -> WbResult<Self> {
        Ok(())
    }
}

impl<A: Scalar> Params for (A,) {
    const COUNT: usize = 1;
    fn decode(args: &mut ListIterator, store: &StoreResource) -> WbResult<Self> {
        Ok((A::decode(args, 0, store)?,))
    }
}

impl<A: Scalar, B: Scalar> Params for (A, B) {
    const COUNT: usize = 2;
    fn decode(args: &mut ListIterator, store: &StoreResource) -> WbResult<Self> {
        Ok((A::decode(args, 0, store)?, B::decode(args, 1, store)?))
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

/// In an `Arc`: cloning a `TypedFunc` clones its type, which takes
/// reference counts in the engine's type registry (about 100 ns a call).
struct Typed<P, R>(Arc<TypedFunc<P, R>>);

impl<P: Params, R: Results> FastCall for Typed<P, R> {
    fn call<'a>(
        &self,
        env: Env<'a>,
        store: &ResourceArc<StoreResource>,
        opts: &CallOptions,
        args: Term<'a>,
    ) -> Term<'a> {
        let params = match decode_params::<P>(args, store) {
            Ok(params) => params,
            Err(e) => return reply::<()>(env, Err(e)),
        };
        let func = self.0.clone();
        start(env, store, opts, move |mut wstore| {
            Box::pin(async move {
                let result = func.call_async(&mut wstore, params).await;
                (wstore, result.map(|r| Outcome::Values(r.into_outs())))
            })
        })
    }
}

fn decode_params<P: Params>(args: Term, store: &StoreResource) -> WbResult<P> {
    let not_a_list = || WbError::new(Kind::Argument, "arguments must be a proper list");
    // The length first: iterating an improper list would stop early.
    let len = args.list_length().map_err(|_| not_a_list())?;
    if len != P::COUNT {
        return Err(WbError::new(
            Kind::Arity,
            format!("expected {} argument(s), got {len}", P::COUNT),
        ));
    }
    let mut terms = args.into_list_iterator().map_err(|_| not_a_list())?;
    P::decode(&mut terms, store)
}

fn typed<P: Params, R: Results>(func: &Func, store: impl AsContext) -> Option<Arc<dyn FastCall>> {
    let typed = func.typed::<P, R>(&store).ok()?;
    Some(Arc::new(Typed(Arc::new(typed))))
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
