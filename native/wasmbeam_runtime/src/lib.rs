//! Wasmbeam's native core over Wasmtime, with no BEAM in sight: what the
//! NIF crate (`native/wasmbeam`) builds its resources and entry points on.
//!
//! Two layers, each naming only what is below it:
//!
//! 1. [`driver`]: the execution driver. Stores and their runs (a state
//!    machine polled one time slice at a time), the epoch ticker, the host
//!    slot where host calls meet the process that drives a run, the waker
//!    that tells a process its guest's I/O is ready, WASI pipes and sinks,
//!    and the one error type. Processes are opaque tokens here.
//! 2. [`domain`]: what a Wasm embedding decides: function signatures and
//!    their typed fast paths, host-function definition, the one import
//!    resolver and WASI linker shared by instances and linked modules.
//!
//! Everything here runs under `cargo test`.

pub mod domain;
pub mod driver;
