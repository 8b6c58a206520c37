//! Resource arguments that always decode. Rustler raises `badarg` (an
//! `ArgumentError "argument error"` in Elixir) when a resource argument is
//! not one, before a NIF's body runs: a forged handle
//! (`%Wasmbeam.Instance{ref: make_ref()}`) or one kept from an earlier run
//! of the VM would raise. A NIF that takes a [`Handle`] answers
//! `{:error, %Wasmbeam.Error{kind: :argument}}` instead.

use rustler::{Decoder, NifResult, Resource, ResourceArc, Term};
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};

/// A resource argument, or what was passed instead.
pub struct Handle<T: Resource>(Option<ResourceArc<T>>);

impl<'a, T: Resource> Decoder<'a> for Handle<T> {
    #[inline]
    fn decode(term: Term<'a>) -> NifResult<Self> {
        Ok(Handle(term.decode().ok()))
    }
}

impl<T: Resource> Handle<T> {
    /// The resource, or an `:argument` error that says what was expected.
    #[inline]
    pub fn get(self, what: &str) -> WbResult<ResourceArc<T>> {
        self.0.ok_or_else(|| not_a_handle(what))
    }
}

#[cold]
fn not_a_handle(what: &str) -> WbError {
    WbError::new(
        Kind::Argument,
        format!(
            "not a live {what}: its reference was not made by Wasmbeam in this run of the VM \
             (a forged or persisted handle)"
        ),
    )
}

/// The resource behind a [`Handle`] argument, or return from the NIF with
/// its `{:error, %Wasmbeam.Error{kind: :argument}}`:
/// `let store = handle!(env, store, "store");`
#[macro_export]
macro_rules! handle {
    ($env:expr, $arg:ident, $what:literal) => {
        match $arg.get($what) {
            Ok(resource) => resource,
            Err(e) => return $crate::nif::error::error($env, &e),
        }
    };
}
