//! Component resources: a compiled component, a component instantiated
//! into a store (with a cache of its exported functions), and handles to
//! resources the guest owns.

use crate::resources::engine::EngineResource;
use crate::resources::store::StoreResource;
use parking_lot::Mutex;
use rustler::ResourceArc;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use wasmbeam_runtime::domain::component::{export_func, FuncTypes, ItemPath};
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmtime::component::{Component, Func, Instance, ResourceAny, ResourceType};

pub struct ComponentResource {
    pub component: Component,
    pub engine: ResourceArc<EngineResource>,
}

#[rustler::resource_impl]
impl rustler::Resource for ComponentResource {}

/// A component linked once with its imports (Wasmtime's `InstancePre`).
/// Its handlers live in a registry of the link's own, not in any store,
/// kept alive by the host functions that name it.
pub struct LinkedComponentResource {
    pub component: ResourceArc<ComponentResource>,
    pub pre: wasmtime::component::InstancePre<wasmbeam_runtime::driver::store_data::StoreData>,
    /// Linked with WASI preview 2: each instance's store must have a WASI
    /// context.
    pub wasi: bool,
}

#[rustler::resource_impl]
impl rustler::Resource for LinkedComponentResource {}

pub struct ComponentInstanceResource {
    pub store: ResourceArc<StoreResource>,
    pub instance: Instance,
    pub component: ResourceArc<ComponentResource>,
    /// Exported functions looked up so far, so that calls by name pay for
    /// the lookup once.
    funcs: Mutex<HashMap<ItemPath, (Func, Arc<FuncTypes>)>>,
}

#[rustler::resource_impl]
impl rustler::Resource for ComponentInstanceResource {}

impl ComponentInstanceResource {
    pub fn new(
        store: ResourceArc<StoreResource>,
        instance: Instance,
        component: ResourceArc<ComponentResource>,
    ) -> ComponentInstanceResource {
        ComponentInstanceResource {
            store,
            instance,
            component,
            funcs: Mutex::new(HashMap::new()),
        }
    }

    /// The exported function at `path`, with its types.
    pub fn func(&self, path: &ItemPath) -> WbResult<(Func, Arc<FuncTypes>)> {
        if let Some(found) = self.funcs.lock().get(path) {
            return Ok(found.clone());
        }
        let found = self.store.core.with_idle(|store| {
            export_func(store, &self.component.component, &self.instance, path)
        })?;
        self.funcs.lock().insert(path.clone(), found.clone());
        Ok(found)
    }
}

const LIVE: u8 = 0;
/// Handed to the guest as an `own` argument: the guest owns it now.
const MOVED: u8 = 1;
const DROPPED: u8 = 2;

/// A resource the guest owns and handed to Elixir (an `own<R>` result).
/// Dropping the last Elixir reference drops it in the guest at the
/// store's next component call (a drop runs guest code, so it cannot run
/// in a garbage collector's callback).
pub struct GuestResource {
    pub store: ResourceArc<StoreResource>,
    pub resource: ResourceAny,
    state: AtomicU8,
}

#[rustler::resource_impl]
impl rustler::Resource for GuestResource {}

impl Drop for GuestResource {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == LIVE {
            self.store.dropped_resources.lock().push(self.resource);
        }
    }
}

impl GuestResource {
    pub fn new(store: ResourceArc<StoreResource>, resource: ResourceAny) -> GuestResource {
        GuestResource {
            store,
            resource,
            state: AtomicU8::new(LIVE),
        }
    }

    /// The resource, if it may be passed to a function of `store` that
    /// takes a resource of type `ty`.
    pub fn usable(&self, store: &StoreResource, ty: &ResourceType) -> WbResult<ResourceAny> {
        if self.store.id() != store.id() {
            return Err(WbError::new(
                Kind::Argument,
                "the resource belongs to another store",
            ));
        }
        match self.state.load(Ordering::Acquire) {
            LIVE => {}
            MOVED => {
                return Err(WbError::new(
                    Kind::Argument,
                    "the resource was handed to the guest by an earlier call (it took ownership)",
                ))
            }
            _ => return Err(WbError::new(Kind::Argument, "the resource was dropped")),
        }
        if self.resource.ty() != *ty {
            return Err(WbError::new(
                Kind::Type,
                "the resource is of another resource type",
            ));
        }
        Ok(self.resource)
    }

    /// Marks the resource as handed to the guest.
    pub fn moved(&self) {
        self.state.store(MOVED, Ordering::Release);
    }

    /// Marks the resource as dropped; false if it was not live.
    pub fn take_for_drop(&self) -> bool {
        self.state
            .compare_exchange(LIVE, DROPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Undoes `take_for_drop` when the drop could not start.
    pub fn restore(&self) {
        let _ = self
            .state
            .compare_exchange(DROPPED, LIVE, Ordering::AcqRel, Ordering::Acquire);
    }
}
