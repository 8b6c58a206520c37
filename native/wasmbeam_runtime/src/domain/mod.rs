//! Layer 2: what a Wasm embedding decides (see the crate documentation).
//! Names `crate::driver` and, one way only, its own files (checked by
//! `bin/check-native-layers`).

pub mod component;
pub mod host_funcs;
pub mod imports;
pub mod signature;
pub mod typed;
