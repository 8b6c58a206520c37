//! Wasmbeam's native half: the NIF library `Wasmbeam.Native` loads.
//!
//! Four layers, each naming only those below it (checked by
//! `bin/check-native-layers`):
//!
//! 1. the execution driver and 2. the domain: the `wasmbeam_runtime`
//!    crate, with no BEAM in sight (tested with `cargo test`);
//! 3. [`resources`]: Rustler resources around the driver's objects, and
//!    what only the BEAM has (monitors, pids, terms kept between calls);
//! 4. [`nif`]: NIF entry points and the codecs between terms and the
//!    driver's values, steps and errors.
//!
//! This file only wires.

mod nif;
mod resources;

rustler::init!("Elixir.Wasmbeam.Native");
