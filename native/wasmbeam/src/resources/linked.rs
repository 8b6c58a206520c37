//! Linked modules: a module whose imports were resolved once (Wasmtime's
//! `InstancePre`), so that each instantiation only creates the instance.
//! Its host functions' handlers live in a registry of the link's own, kept
//! alive by the host functions that name it, not in any store.

use crate::resources::engine::EngineResource;
use crate::resources::module::ModuleResource;
use rustler::ResourceArc;
use wasmbeam_runtime::domain::imports::Linked;

pub struct LinkedResource {
    pub engine: ResourceArc<EngineResource>,
    pub module: ResourceArc<ModuleResource>,
    pub linked: Linked,
}

#[rustler::resource_impl]
impl rustler::Resource for LinkedResource {}
