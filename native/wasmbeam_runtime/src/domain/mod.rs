//! Layer 2: what a Wasm embedding decides (see the crate documentation).
//! Names only `crate::driver` and files earlier in this list.

pub mod host_funcs;
pub mod imports;
pub mod signature;
pub mod typed;
