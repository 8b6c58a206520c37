//! Wasm values as the driver moves them: decoded arguments before they
//! meet a store, and results read out of a store, ready to encode without
//! it. Terms never appear here (the NIF crate's codecs make and read them).

use smallvec::SmallVec;
use std::sync::Arc;
use wasmtime::{AsContextMut, ExternRef, Func, Ref, Val, ValType};

/// The arguments of a call or the answer of a host function. Most have one
/// or two values, kept inline: an allocation costs as much as decoding
/// them. (Not more inline: these move with every future that holds them.)
pub type Args = SmallVec<[Arg; 2]>;

/// The results of a call or the arguments of a host call (most have one).
pub type Outs = SmallVec<[Out; 1]>;

/// The payload of an `externref` made from an Elixir term (its external
/// term format).
pub struct ExternTerm(pub Arc<[u8]>);

/// An argument before it meets a store. Externrefs are only allocated in
/// the store when the call starts.
pub enum Arg {
    Val(Val),
    Extern(Option<Arc<[u8]>>),
}

/// A function's parameter and result types, read once from the store.
#[derive(Debug, Clone)]
pub struct FuncSig {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

impl FuncSig {
    pub fn of(func: &Func, store: impl wasmtime::AsContext) -> FuncSig {
        let ty = func.ty(&store);
        FuncSig {
            params: ty.params().collect(),
            results: ty.results().collect(),
        }
    }
}

/// A result read out of a store.
pub enum Out {
    Val(Val),
    Func(Func, Arc<FuncSig>),
    Extern(Option<Arc<[u8]>>),
    Opaque,
}

pub const F32_CANONICAL_NAN: u32 = 0x7fc0_0000;
pub const F64_CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

/// Makes a `Val` in the store (allocating externrefs in the current root scope).
pub fn arg_to_val(arg: Arg, mut store: impl AsContextMut) -> wasmtime::Result<Val> {
    match arg {
        Arg::Val(v) => Ok(v),
        Arg::Extern(None) => Ok(Val::ExternRef(None)),
        Arg::Extern(Some(bytes)) => {
            let r = ExternRef::new(&mut store, ExternTerm(bytes))?;
            Ok(Val::ExternRef(Some(r)))
        }
    }
}

/// Reads a `Val` out of the store so that it can outlive the root scope.
pub fn val_to_out(val: Val, store: impl AsContextMut) -> Out {
    match val {
        Val::ExternRef(None) => Out::Extern(None),
        Val::ExternRef(Some(r)) => {
            let ctx = store.as_context();
            match r.data(&ctx) {
                Ok(Some(data)) => match data.downcast_ref::<ExternTerm>() {
                    Some(t) => Out::Extern(Some(t.0.clone())),
                    None => Out::Opaque,
                },
                _ => Out::Opaque,
            }
        }
        Val::FuncRef(Some(f)) => {
            let sig = Arc::new(FuncSig::of(&f, &store));
            Out::Func(f, sig)
        }
        Val::AnyRef(None) | Val::ExnRef(None) | Val::ContRef(None) => Out::Extern(None),
        Val::AnyRef(Some(_)) | Val::ExnRef(Some(_)) | Val::ContRef(Some(_)) => Out::Opaque,
        v => Out::Val(v),
    }
}

/// Reads a table element out of the store, like [`val_to_out`].
pub fn ref_to_out(r: Ref, store: impl AsContextMut) -> Out {
    match r {
        Ref::Func(f) => val_to_out(Val::FuncRef(f), store),
        Ref::Extern(e) => val_to_out(Val::ExternRef(e), store),
        _ => Out::Opaque,
    }
}
