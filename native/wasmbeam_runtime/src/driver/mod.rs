//! Layer 1: the execution driver (see the crate documentation). Listed
//! from the bottom up; each file names only files earlier in this list.

pub mod engine;
pub mod error;
pub mod host_slot;
pub mod memory;
pub mod store;
pub mod store_data;
pub mod values;
pub mod wake;
pub mod wasi_io;
