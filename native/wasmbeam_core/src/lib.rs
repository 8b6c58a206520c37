//! The parts of Wasmbeam's native code that do not touch the BEAM, kept in
//! an rlib so that `cargo test` can run their unit tests (a cdylib that
//! references `enif_*` symbols cannot be linked into a test binary).

pub mod artifact;
pub mod sealed;
pub mod sealed_file;
