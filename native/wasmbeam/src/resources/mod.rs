//! Layer 3: Rustler resources around the driver's objects, and what only
//! the BEAM has (monitors, pids, terms kept between calls). Names
//! `wasmbeam_runtime` and, one way only, its own files; never the NIF layer
//! (checked by `bin/check-native-layers`).

pub mod atoms;
pub mod compiler;
pub mod component;
pub mod engine;
pub mod handlers;
pub mod handles;
pub mod host_states;
pub mod instance;
pub mod linked;
pub mod module;
pub mod pipe;
pub mod send;
pub mod store;
