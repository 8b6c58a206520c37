//! What a Wasmtime store carries for Wasmbeam: the call's deadline and
//! flags, the host slot, the WASI context, limits that record their own
//! refusals, and the host functions already made in the store.

use crate::driver::error::{Kind, WbError, WbResult};
use crate::driver::host_slot::{HostData, HostShared};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Func, ResourceLimiter, StoreLimits, StoreLimitsBuilder, ValType};

/// A store's limits, as given to `Wasmbeam.Store.new/1`.
#[derive(Debug, Clone, Default)]
pub struct StoreLimitsSpec {
    pub memory_size: Option<usize>,
    pub table_elements: Option<usize>,
    pub instances: Option<usize>,
    pub tables: Option<usize>,
    pub memories: Option<usize>,
}

/// Wasmtime's default for each count limit.
const DEFAULT_COUNT_LIMIT: usize = 10_000;

/// Store limits that remember when they refused something, so that a
/// failed instantiation is reported as `:limit` because a limit refused
/// it, not because Wasmtime's message happens to say "limit".
///
/// Counts (instances, memories, tables) are checked here too, before an
/// instantiation starts, instead of by Wasmtime (whose refusal is a plain
/// message): Wasmtime's own count limits are left unbounded.
pub struct RecordingLimiter {
    limits: StoreLimits,
    refused: bool,
    max_instances: usize,
    max_memories: usize,
    max_tables: usize,
    instances: usize,
    memories: usize,
    tables: usize,
}

impl RecordingLimiter {
    pub fn new(spec: &StoreLimitsSpec) -> RecordingLimiter {
        let mut builder = StoreLimitsBuilder::new()
            .instances(usize::MAX)
            .memories(usize::MAX)
            .tables(usize::MAX);
        if let Some(n) = spec.memory_size {
            builder = builder.memory_size(n);
        }
        if let Some(n) = spec.table_elements {
            builder = builder.table_elements(n);
        }
        RecordingLimiter {
            limits: builder.build(),
            refused: false,
            max_instances: spec.instances.unwrap_or(DEFAULT_COUNT_LIMIT),
            max_memories: spec.memories.unwrap_or(DEFAULT_COUNT_LIMIT),
            max_tables: spec.tables.unwrap_or(DEFAULT_COUNT_LIMIT),
            instances: 0,
            memories: 0,
            tables: 0,
        }
    }

    /// Whether a limit refused something since the last call.
    pub fn take_refusal(&mut self) -> bool {
        std::mem::take(&mut self.refused)
    }

    /// Counts an instance of a module with `memories` and `tables` of its
    /// own, or refuses it when that would pass a count limit. Counted
    /// before the instantiation is tried: like Wasmtime's own counts, an
    /// instantiation that fails later still counts (its instance may stay
    /// in the store).
    pub fn reserve_instance(&mut self, memories: usize, tables: usize) -> WbResult<()> {
        let check = |what: &str, now: usize, more: usize, max: usize| {
            if now.saturating_add(more) > max {
                Err(WbError::new(
                    Kind::Limit,
                    format!("the store's {what} limit ({max}) would be passed"),
                ))
            } else {
                Ok(())
            }
        };
        check("instance", self.instances, 1, self.max_instances)?;
        check("memory", self.memories, memories, self.max_memories)?;
        check("table", self.tables, tables, self.max_tables)?;
        self.instances += 1;
        self.memories += memories;
        self.tables += tables;
        Ok(())
    }
}

impl ResourceLimiter for RecordingLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.table_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        usize::MAX
    }

    fn tables(&self) -> usize {
        usize::MAX
    }

    fn memories(&self) -> usize {
        usize::MAX
    }
}

/// A host function made in a store, found again by its handler and type.
struct MadeHostFunc {
    registry: u64,
    index: usize,
    name: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
    func: Func,
}

/// Per-store state that Wasmtime hands to the epoch callback and to host
/// functions.
pub struct StoreData {
    pub limiter: RecordingLimiter,
    pub deadline: Option<Instant>,
    pub timed_out: bool,
    /// A call made through a host function's caller ran out of fuel.
    pub nested_out_of_fuel: bool,
    /// The fuel the store had when the last call started.
    pub fuel_at_start: u64,
    pub cancel: Arc<AtomicBool>,
    /// The store's host slot, where host functions meet the driver.
    pub host: Arc<HostShared>,
    /// The WASI context, for stores given one.
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
    /// Store objects cannot be freed before their store: a host function
    /// defined again with the same handler and type (another
    /// instantiation into this store, or a retried one) is reused.
    host_funcs: Vec<MadeHostFunc>,
}

impl StoreData {
    pub fn new(
        spec: &StoreLimitsSpec,
        cancel: Arc<AtomicBool>,
        host: Arc<HostShared>,
    ) -> StoreData {
        StoreData {
            limiter: RecordingLimiter::new(spec),
            deadline: None,
            timed_out: false,
            nested_out_of_fuel: false,
            fuel_at_start: 0,
            cancel,
            host,
            wasi: None,
            host_funcs: Vec::new(),
        }
    }

    /// The host function made earlier for this handler and type, if any.
    pub fn host_func(
        &self,
        registry: u64,
        index: usize,
        name: &str,
        params: &[ValType],
        results: &[ValType],
    ) -> Option<Func> {
        let same = |a: &[ValType], b: &[ValType]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
        };
        self.host_funcs
            .iter()
            .find(|f| {
                f.registry == registry
                    && f.index == index
                    && f.name == name
                    && same(&f.params, params)
                    && same(&f.results, results)
            })
            .map(|f| f.func)
    }

    pub fn remember_host_func(
        &mut self,
        registry: u64,
        index: usize,
        name: &str,
        params: &[ValType],
        results: &[ValType],
        func: Func,
    ) {
        self.host_funcs.push(MadeHostFunc {
            registry,
            index,
            name: name.to_owned(),
            params: params.to_vec(),
            results: results.to_vec(),
            func,
        });
    }

    /// The kind of an error raised while setting something up in the store
    /// (an instantiation, a defined import) before any guest code ran:
    /// `:limit` when a limit refused it (recorded by the limiter, or the
    /// pooling allocator's typed error, or memory exhaustion), else `:link`.
    pub fn setup_error(&mut self, err: &wasmtime::Error) -> Kind {
        let refused = self.limiter.take_refusal();
        if refused
            || err
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some()
            || err.downcast_ref::<wasmtime::OutOfMemory>().is_some()
        {
            Kind::Limit
        } else {
            Kind::Link
        }
    }
}

impl HostData for StoreData {
    fn host(&self) -> &HostShared {
        &self.host
    }
    fn timed_out(&self) -> bool {
        self.timed_out
    }
    fn deadline_passed(&mut self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.timed_out = true;
        }
        self.timed_out
    }
    fn nested_out_of_fuel(&self) -> bool {
        self.nested_out_of_fuel
    }
    fn set_nested_out_of_fuel(&mut self) {
        self.nested_out_of_fuel = true;
    }
}

/// WASI preview 2 (components) reads the same context as preview 1: a
/// store has one WASI context whatever kind of guest uses it. A store
/// never given one answers with a context that grants nothing (linking
/// refuses WASI for such a store, so this is a safety net only).
impl wasmtime_wasi::WasiView for StoreData {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        self.wasi
            .get_or_insert_with(crate::driver::wasi_io::empty_context)
            .ctx()
    }
}
