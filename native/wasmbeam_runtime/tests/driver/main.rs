//! Tests of the execution driver and the domain layer, run with plain
//! `cargo test`: no BEAM. Processes are `u64` tokens; the store's `Notify`
//! and `StoreEvents` are recorders (see `common`).
//!
//! One test binary with a module per concept, not one binary per file:
//! with the release profile (thin LTO) each integration-test binary is a
//! link of all of Wasmtime, several minutes each on a small machine.

mod common;

mod cancel;
mod components;
mod host_calls;
mod limits;
mod network_grants;
mod pipes;
mod runs;
mod ticker;
mod waiters;
