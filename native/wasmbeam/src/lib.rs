//! Wasmbeam's native half: Wasmtime engines, modules, stores and instances
//! as Rustler resources, and the driver that runs guest code in time slices
//! on the calling BEAM process. One file per concept; this file only wires.

mod atoms;
mod cache;
mod engine;
mod error;
mod func;
mod global;
mod host;
mod inspect;
mod instance;
mod linked;
mod memory;
mod module;
mod store;
mod table;
mod typed;
mod types;
mod values;
mod wake;
mod wasi;

rustler::init!("Elixir.Wasmbeam.Native");
