//! The engine resource: the driver's engine (a Wasmtime `Engine` and its
//! place on the epoch ticker), shared by every module and store made from it.

use std::sync::Arc;
use wasmbeam_runtime::driver::engine::EngineCore;

pub struct EngineResource {
    pub core: Arc<EngineCore>,
}

#[rustler::resource_impl]
impl rustler::Resource for EngineResource {}

impl EngineResource {
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.core.engine
    }
}
