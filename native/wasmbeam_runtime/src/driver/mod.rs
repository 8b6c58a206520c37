//! Layer 1: the execution driver (see the crate documentation). Its files
//! name each other one way only (bottom: `error`, `values`, `memory`;
//! top: `store`), checked by `bin/check-native-layers`.

pub mod engine;
pub mod error;
pub mod host_slot;
pub mod memory;
pub mod store;
pub mod store_data;
pub mod values;
pub mod wake;
pub mod wasi_io;
