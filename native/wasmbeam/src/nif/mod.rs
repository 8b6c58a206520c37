//! Layer 4: NIF entry points (one file per concept) and the codecs they
//! share (`inspect`, `error`, `types`, `handles`, `values`, `step`,
//! `imports`). Files name each other one way only (checked by
//! `bin/check-native-layers`).

pub mod cache;
pub mod component;
pub mod component_types;
pub mod component_values;
pub mod component_wave;
pub mod engine;
pub mod error;
pub mod func;
pub mod global;
pub mod handle_arg;
pub mod handles;
pub mod host;
pub mod imports;
pub mod inspect;
pub mod instance;
pub mod linked;
pub mod memory;
pub mod module;
pub mod step;
pub mod store;
pub mod table;
pub mod types;
pub mod values;
pub mod wasi;
