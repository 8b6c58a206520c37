//! The module resource: compiled code, shareable by any number of stores
//! of its engine.

use crate::resources::engine::EngineResource;
use rustler::ResourceArc;

pub struct ModuleResource {
    pub module: wasmtime::Module,
    pub engine: ResourceArc<EngineResource>,
}

#[rustler::resource_impl]
impl rustler::Resource for ModuleResource {}
