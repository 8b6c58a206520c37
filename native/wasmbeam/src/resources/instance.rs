//! The instance resource: a module instantiated into a store, with a
//! by-name cache of its exported functions.

use crate::resources::module::ModuleResource;
use crate::resources::store::StoreResource;
use parking_lot::Mutex;
use rustler::ResourceArc;
use std::collections::HashMap;
use std::sync::Arc;
use wasmbeam_runtime::domain::signature::Signature;
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmtime::{Func, Instance};

pub struct InstanceResource {
    pub store: ResourceArc<StoreResource>,
    pub instance: Instance,
    pub module: ResourceArc<ModuleResource>,
    /// Exported functions looked up by name so far, so that calls by name
    /// pay for the lookup once.
    funcs: Mutex<HashMap<String, (Func, Arc<Signature>)>>,
}

#[rustler::resource_impl]
impl rustler::Resource for InstanceResource {}

impl InstanceResource {
    pub fn new(
        store: ResourceArc<StoreResource>,
        instance: Instance,
        module: ResourceArc<ModuleResource>,
    ) -> InstanceResource {
        InstanceResource {
            store,
            instance,
            module,
            funcs: Mutex::new(HashMap::new()),
        }
    }

    /// The exported function `name`, with its signature.
    pub fn func(&self, name: &str) -> WbResult<(Func, Arc<Signature>)> {
        if let Some(found) = self.funcs.lock().get(name) {
            return Ok(found.clone());
        }
        let found = self.store.core.with_idle(|store| {
            let func = self
                .instance
                .get_func(&mut *store, name)
                .ok_or_else(|| not_a_function(name))?;
            Ok((func, Arc::new(Signature::of(&func, store))))
        })?;
        self.funcs.lock().insert(name.to_owned(), found.clone());
        Ok(found)
    }
}

pub fn not_a_function(name: &str) -> WbError {
    WbError::new(
        Kind::NotFound,
        format!("no exported function named {name:?}"),
    )
}
