//! Calls of the commonest signatures through Wasmtime's `TypedFunc`.
//!
//! `Func::call_async` checks every call's arguments against the function's
//! type, which it looks up in the engine's type registry (a lock and two
//! reference counts, twice per call): about as much as the rest of a short
//! call costs. A `TypedFunc` checks the type once, when it is made. One is
//! made when an export whose parameters (up to two) and result (at most
//! one) are all numbers is first resolved, and calls go through it; other
//! signatures take the general path.
//!
//! Host functions with those signatures are made typed too
//! (`Func::wrap_async`): Wasmtime then hands their arguments over as Rust
//! values and takes the results back without `Val` slices.

use crate::driver::host_slot::{call_handler, HostImport};
use crate::driver::store::{Outcome, RunFuture, WStore};
use crate::driver::store_data::StoreData;
use crate::driver::values::{Arg, Args, Out, Outs};
use std::future::Future;
use std::sync::Arc;
use wasmtime::{
    AsContext, Caller, Func, Linker, TypedFunc, Val, ValType, WasmParams, WasmResults, WasmTy,
    WasmTyList,
};

/// Makes the run of a call whose arguments were decoded against the
/// function's parameter types.
pub trait FastCall: Send + Sync {
    fn run(&self, store: WStore, args: &Args) -> RunFuture;
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
                    // Arguments are decoded against the parameter types.
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

trait Params: WasmParams + WasmTyList + Sized + Send + Sync + 'static {
    /// The call's arguments, decoded against the parameter types.
    fn from_args(args: &Args) -> Self;
    /// A host function's arguments, as the driver hands them to Elixir.
    fn into_outs(self) -> Outs;
}

impl Params for () {
    fn from_args(_: &Args) -> Self {}
    fn into_outs(self) -> Outs {
        Outs::new()
    }
}

impl<A: Scalar> Params for (A,) {
    fn from_args(args: &Args) -> Self {
        (A::from_arg(&args[0]),)
    }
    fn into_outs(self) -> Outs {
        smallvec::smallvec![self.0.into_out()]
    }
}

impl<A: Scalar, B: Scalar> Params for (A, B) {
    fn from_args(args: &Args) -> Self {
        (A::from_arg(&args[0]), B::from_arg(&args[1]))
    }
    fn into_outs(self) -> Outs {
        let mut outs = Outs::new();
        outs.push(self.0.into_out());
        outs.push(self.1.into_out());
        outs
    }
}

trait Results: WasmResults + wasmtime::WasmRet + Send + Sync + 'static {
    fn into_outs(self) -> Outs;
    /// A host function's answer, decoded against its result types.
    fn from_args(args: Args) -> Self;
}

impl Results for () {
    fn into_outs(self) -> Outs {
        Outs::new()
    }
    fn from_args(_: Args) -> Self {}
}

impl<R: Scalar> Results for R {
    fn into_outs(self) -> Outs {
        smallvec::smallvec![self.into_out()]
    }
    fn from_args(args: Args) -> Self {
        // The answer was decoded against the result types.
        R::from_arg(args.first().expect("one result"))
    }
}

/// In an `Arc`: cloning a `TypedFunc` clones its type, which takes
/// reference counts in the engine's type registry (about 100 ns a call).
struct Typed<P, R>(Arc<TypedFunc<P, R>>);

impl<P: Params, R: Results> FastCall for Typed<P, R> {
    fn run(&self, mut store: WStore, args: &Args) -> RunFuture {
        let params = P::from_args(args);
        let func = self.0.clone();
        Box::pin(async move {
            let result = func.call_async(&mut store, params).await;
            (store, result.map(|r| Outcome::Values(r.into_outs())))
        })
    }
}

/// Something made for one signature of the covered set.
trait ForSignature {
    type Made;
    fn make<P: Params, R: Results>(self) -> Self::Made;
}

/// A `TypedFunc` for an export.
struct TypedExport<'f, S>(&'f Func, S);

impl<S: AsContext> ForSignature for TypedExport<'_, S> {
    type Made = Option<Arc<dyn FastCall>>;
    fn make<P: Params, R: Results>(self) -> Self::Made {
        let typed = self.0.typed::<P, R>(&self.1).ok()?;
        Some(Arc::new(Typed(Arc::new(typed))))
    }
}

/// The future of a typed host function's call.
type HostFuture<'a, R> = Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>;

fn typed_host_call<P: Params, R: Results>(
    mut caller: Caller<'_, StoreData>,
    params: P,
    import: HostImport,
) -> HostFuture<'_, R> {
    Box::new(async move {
        let values = call_handler(&mut caller, params.into_outs(), import).await?;
        Ok(R::from_args(values))
    })
}

/// A typed host function in a store.
struct StoreHost<'s>(&'s mut WStore, &'s HostImport);

impl ForSignature for StoreHost<'_> {
    type Made = Func;
    fn make<P: Params, R: Results>(self) -> Func {
        let import = self.1.clone();
        Func::wrap_async(self.0, move |caller, params: P| {
            typed_host_call::<P, R>(caller, params, import.clone())
        })
    }
}

/// A typed host function in a linker.
struct LinkerHost<'l> {
    linker: &'l mut Linker<StoreData>,
    module: &'l str,
    name: &'l str,
    import: &'l HostImport,
}

impl ForSignature for LinkerHost<'_> {
    type Made = wasmtime::Result<()>;
    fn make<P: Params, R: Results>(self) -> Self::Made {
        let import = self.import.clone();
        self.linker
            .func_wrap_async(self.module, self.name, move |caller, params: P| {
                typed_host_call::<P, R>(caller, params, import.clone())
            })
            .map(|_| ())
    }
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

fn with_results<P: Params, T: ForSignature>(target: T, results: &[ValType]) -> Option<T::Made> {
    match results {
        [] => Some(target.make::<P, ()>()),
        [r] => by_type!(r, R, Some(target.make::<P, R>())),
        _ => None,
    }
}

/// Makes `target` for the signature, if it is one of those covered.
fn for_signature<T: ForSignature>(
    target: T,
    params: &[ValType],
    results: &[ValType],
) -> Option<T::Made> {
    match params {
        [] => with_results::<(), T>(target, results),
        [a] => by_type!(a, A, with_results::<(A,), T>(target, results)),
        [a, b] => by_type!(
            a,
            A,
            by_type!(b, B, with_results::<(A, B), T>(target, results))
        ),
        _ => None,
    }
}

/// A typed path for calls of `func`, if its signature is one of those covered.
pub fn fast_call(
    func: &Func,
    store: impl AsContext,
    params: &[ValType],
    results: &[ValType],
) -> Option<Arc<dyn FastCall>> {
    for_signature(TypedExport(func, store), params, results).flatten()
}

/// A typed host function in `store` whose calls go to `import`, if the
/// signature is one of those covered.
pub fn host_func(
    store: &mut WStore,
    params: &[ValType],
    results: &[ValType],
    import: &HostImport,
) -> Option<Func> {
    for_signature(StoreHost(store, import), params, results)
}

/// Defines a typed host function in `linker`, if the signature is one of
/// those covered (`None`: define an untyped one).
pub fn link_host_func(
    linker: &mut Linker<StoreData>,
    module: &str,
    name: &str,
    params: &[ValType],
    results: &[ValType],
    import: &HostImport,
) -> Option<wasmtime::Result<()>> {
    let target = LinkerHost {
        linker,
        module,
        name,
        import,
    };
    for_signature(target, params, results)
}
