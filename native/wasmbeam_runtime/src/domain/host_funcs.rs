//! Host functions: imports implemented in Elixir, defined in a store (for
//! `Instance.new`) or in a linker (for a linked module). Their calls go
//! through the host slot (`crate::driver::host_slot`).

use crate::driver::host_slot::{host_call, HostImport};
use crate::driver::store::WStore;
use crate::driver::store_data::StoreData;
use wasmtime::{Func, FuncType, Linker, ValType};

/// A host function to define: which handler, with which types.
pub struct HostFuncSpec {
    pub import: HostImport,
    pub registry: u64,
    pub index: usize,
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

/// The host function for `spec` in `store`: made once per store for a
/// given handler and type, then reused (store objects live as long as the
/// store, so an instantiation that fails, or is retried, must not add
/// more of them).
pub fn in_store(store: &mut WStore, spec: &HostFuncSpec) -> Func {
    let name = spec.import.name();
    if let Some(func) =
        store
            .data()
            .host_func(spec.registry, spec.index, name, &spec.params, &spec.results)
    {
        return func;
    }
    let func =
        crate::domain::typed::host_func(&mut *store, &spec.params, &spec.results, &spec.import)
            .unwrap_or_else(|| {
                let ty = FuncType::new(store.engine(), spec.params.clone(), spec.results.clone());
                let import = spec.import.clone();
                Func::new_async(&mut *store, ty, move |caller, params, out| {
                    Box::new(host_call(caller, params, out, import.clone()))
                })
            });
    store.data_mut().remember_host_func(
        spec.registry,
        spec.index,
        name,
        &spec.params,
        &spec.results,
        func,
    );
    func
}

/// Defines the host function for `spec` as `module`.`name` in `linker`.
pub fn in_linker(
    linker: &mut Linker<StoreData>,
    module: &str,
    name: &str,
    spec: &HostFuncSpec,
) -> wasmtime::Result<()> {
    crate::domain::typed::link_host_func(
        linker,
        module,
        name,
        &spec.params,
        &spec.results,
        &spec.import,
    )
    .unwrap_or_else(|| {
        let ty = FuncType::new(linker.engine(), spec.params.clone(), spec.results.clone());
        let import = spec.import.clone();
        linker
            .func_new_async(module, name, ty, move |c, p, r| {
                Box::new(host_call(c, p, r, import.clone()))
            })
            .map(|_| ())
    })
}
