//! Engines: a Wasmtime `Engine` built from a validated configuration, plus
//! the one epoch ticker that time-slices every store of that engine.

use crate::error::{reply, Kind, WbError, WbResult};
use parking_lot::{Condvar, Mutex};
use rustler::{Atom, Env, NifMap, ResourceArc, Term};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
    WasmBacktraceDetails,
};

/// How often the ticker advances the epoch while a long call runs (one
/// that has used a whole slice). A guest yields back to its BEAM process at
/// the first epoch check after a tick, so this bounds how long a guest
/// holds a scheduler (well under 1 ms).
pub const TICK: Duration = Duration::from_micros(100);

/// How often it advances the epoch while only short calls run: their
/// first slice, at most this long, is the only one; ticking ten thousand
/// times a second for calls that end within microseconds would cost a
/// share of a core for nothing.
const SHORT_CALLS_TICK: Duration = Duration::from_micros(500);

/// Ticks (of [`TICK`]) without any running call before the ticker parks
/// itself.
const IDLE_TICKS_BEFORE_PARK: u64 = 200;

/// The configuration decoded from `%Wasmbeam.Engine.Config{}` (validated in
/// Elixir; decoding here rechecks the types).
#[derive(NifMap, Debug, Clone)]
pub struct EngineConfig {
    pub strategy: Atom,
    pub opt_level: Atom,
    pub consume_fuel: bool,
    pub epoch_interruption: bool,
    pub backtrace_details: bool,
    pub parallel_compilation: bool,
    pub ticker_realtime: bool,
    pub max_wasm_stack: usize,
    pub async_stack_size: usize,
    pub simd: bool,
    pub relaxed_simd: bool,
    pub multi_value: bool,
    pub bulk_memory: bool,
    pub reference_types: bool,
    pub multi_memory: bool,
    pub memory64: bool,
    pub threads: bool,
    pub tail_call: bool,
    pub extended_const: bool,
    pub function_references: bool,
    pub gc: bool,
    pub exceptions: bool,
    pub wide_arithmetic: bool,
    pub custom_page_sizes: bool,
    /// The pooling instance allocator's limits, or `None` for on-demand.
    pub pooling: Option<PoolingOptions>,
}

/// Limits of the pooling allocator: every slot is reserved when the engine
/// is created, so instantiation only claims one.
#[derive(NifMap, Debug, Clone)]
pub struct PoolingOptions {
    pub total_instances: u32,
    pub total_memories: u32,
    pub total_tables: u32,
    pub total_stacks: u32,
    pub max_memory_size: usize,
}

pub struct EngineResource {
    pub engine: Engine,
    pub consume_fuel: bool,
    pub epoch_interruption: bool,
    pub ticker: Ticker,
    /// Wasmtime's WASI preview 1 functions, linked once per engine.
    pub wasi_linker: once_cell::sync::OnceCell<wasmtime::Linker<crate::store::StoreData>>,
}

#[rustler::resource_impl]
impl rustler::Resource for EngineResource {}

impl Drop for EngineResource {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

fn build_config(cfg: &EngineConfig) -> WbResult<Config> {
    let mut c = Config::new();
    match cfg.strategy {
        s if s == crate::atoms::cranelift() => {
            c.strategy(Strategy::Cranelift);
        }
        s if s == crate::atoms::winch() => {
            c.strategy(Strategy::Winch);
        }
        s if s == crate::atoms::pulley() => {
            c.target("pulley64")
                .map_err(|e| WbError::new(Kind::Argument, e.to_string()))?;
        }
        _ => return Err(WbError::new(Kind::Argument, "unknown compiler strategy")),
    }
    let level = match cfg.opt_level {
        l if l == crate::atoms::none() => OptLevel::None,
        l if l == crate::atoms::speed() => OptLevel::Speed,
        l if l == crate::atoms::speed_and_size() => OptLevel::SpeedAndSize,
        _ => return Err(WbError::new(Kind::Argument, "unknown optimisation level")),
    };
    c.cranelift_opt_level(level)
        .consume_fuel(cfg.consume_fuel)
        .epoch_interruption(cfg.epoch_interruption)
        .wasm_backtrace_details(if cfg.backtrace_details {
            WasmBacktraceDetails::Enable
        } else {
            WasmBacktraceDetails::Disable
        })
        .parallel_compilation(cfg.parallel_compilation)
        .max_wasm_stack(cfg.max_wasm_stack)
        .async_stack_size(cfg.async_stack_size)
        .wasm_simd(cfg.simd)
        .wasm_relaxed_simd(cfg.relaxed_simd)
        .wasm_multi_value(cfg.multi_value)
        .wasm_bulk_memory(cfg.bulk_memory)
        .wasm_reference_types(cfg.reference_types)
        .wasm_multi_memory(cfg.multi_memory)
        .wasm_memory64(cfg.memory64)
        .wasm_threads(cfg.threads)
        .shared_memory(cfg.threads)
        .wasm_tail_call(cfg.tail_call)
        .wasm_extended_const(cfg.extended_const)
        .wasm_function_references(cfg.function_references)
        .wasm_gc(cfg.gc)
        .wasm_exceptions(cfg.exceptions)
        .wasm_wide_arithmetic(cfg.wide_arithmetic)
        .wasm_custom_page_sizes(cfg.custom_page_sizes);
    if let Some(p) = &cfg.pooling {
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_core_instances(p.total_instances)
            .total_memories(p.total_memories)
            .total_tables(p.total_tables)
            .total_stacks(p.total_stacks)
            .max_memory_size(p.max_memory_size);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    Ok(c)
}

fn new_engine(cfg: EngineConfig) -> WbResult<ResourceArc<EngineResource>> {
    let config = build_config(&cfg)?;
    let engine = Engine::new(&config).map_err(|e| {
        WbError::new(
            Kind::Argument,
            format!(
                "invalid engine configuration: {}",
                crate::error::chain_message(&e)
            ),
        )
    })?;
    let ticker = Ticker::start(engine.clone(), cfg.ticker_realtime);
    Ok(ResourceArc::new(EngineResource {
        engine,
        consume_fuel: cfg.consume_fuel,
        epoch_interruption: cfg.epoch_interruption,
        ticker,
        wasi_linker: once_cell::sync::OnceCell::new(),
    }))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn engine_new(env: Env, config: EngineConfig) -> Term {
    reply(env, crate::error::guard(|| new_engine(config)))
}

/// Whether the engine's epoch ticker runs at real-time priority.
#[rustler::nif]
fn engine_ticker_realtime(engine: ResourceArc<EngineResource>) -> bool {
    engine.ticker.realtime
}

/// Identifies the code-generation settings of an engine: two engines with the
/// same hash can load each other's serialized modules.
#[rustler::nif]
fn engine_compatibility_hash(engine: ResourceArc<EngineResource>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// One thread per engine that advances the epoch every [`TICK`] while any
/// call of that engine is running, and parks when none has run for a while.
/// It never runs guest code, so busy guests cannot starve it.
pub struct Ticker {
    shared: Arc<TickerShared>,
    /// Whether the thread got real-time scheduling (see [`ask_realtime`]).
    pub realtime: bool,
}

struct TickerShared {
    active: AtomicUsize,
    /// Running calls that have used at least one whole slice.
    long: AtomicUsize,
    /// Ticks since the ticker started: a clock with the resolution of a
    /// slice that costs one atomic load to read.
    ticks: AtomicU64,
    parked: AtomicBool,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// Held while a call runs; dropping it tells the ticker the call ended.
pub struct ActiveCall {
    shared: Arc<TickerShared>,
    long: bool,
}

impl ActiveCall {
    /// The call has used a whole slice: tick at the fine period until it
    /// ends.
    pub fn mark_long(&mut self) {
        if !self.long {
            self.long = true;
            self.shared.long.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        if self.long {
            self.shared.long.fetch_sub(1, Ordering::SeqCst);
        }
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    fn start(engine: Engine, realtime: bool) -> Ticker {
        let shared = Arc::new(TickerShared {
            active: AtomicUsize::new(0),
            long: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wasmbeam-epoch".into())
            .spawn(move || run_ticker(engine, for_thread))
            .expect("spawn the epoch ticker thread");
        let realtime = realtime && ask_realtime(&thread);
        Ticker { shared, realtime }
    }

    /// Marks a call as running until the returned guard is dropped.
    pub fn enter(&self) -> ActiveCall {
        self.shared.active.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst) {
            let _guard = self.shared.lock.lock();
            self.shared.wake.notify_one();
        }
        ActiveCall {
            shared: self.shared.clone(),
            long: false,
        }
    }

    /// The time so far in ticks of [`TICK`] (see [`TickerShared::ticks`]).
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _guard = self.shared.lock.lock();
        self.shared.wake.notify_one();
    }
}

/// Asks the OS to run the ticker thread at the lowest real-time priority
/// (`SCHED_FIFO` 1), unless `WASMBEAM_TICKER_REALTIME=0` was set in the
/// environment the VM started with; returns whether it did. Allowed for
/// root, `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` above 0; refused otherwise,
/// and the ticker then runs as an ordinary thread.
///
/// Why: while guests keep every CPU busy, an ordinary thread that wakes
/// every 100 µs is sometimes left waiting for milliseconds (on the 2-vCPU
/// development machine, about every 100 ms a wake came 3-15 ms late), and
/// every running guest's slice stretches with it. A real-time thread
/// preempts them at once. It is safe to give: it runs for about a
/// microsecond per tick, never guest code, and the kernel's real-time
/// throttling bounds it anyway. `Process.sleep(1)` with 20 spinning guests:
/// p99 2.6-6.7 ms as an ordinary thread, 2.5-4.5 ms real-time.
fn ask_realtime(thread: &std::thread::JoinHandle<()>) -> bool {
    if std::env::var_os("WASMBEAM_TICKER_REALTIME").is_some_and(|v| v == "0") {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::thread::JoinHandleExt;
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: the handle names a live thread (it is not joined or
        // detached yet) and `param` outlives the call.
        unsafe { libc::pthread_setschedparam(thread.as_pthread_t(), libc::SCHED_FIFO, &param) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = thread;
        false
    }
}

fn run_ticker(engine: Engine, shared: Arc<TickerShared>) {
    // Linux lets a sleeping thread wake up to 50 us late by default (timer
    // slack), which would stretch every 100 us tick to ~150 us and every
    // guest slice with it. Ask for precise wake-ups on this thread only.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only affects the
    // calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let short_ticks = (SHORT_CALLS_TICK.as_micros() / TICK.as_micros()) as u64;
    let mut idle_ticks = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let (period, ticks) = if shared.long.load(Ordering::SeqCst) > 0 {
            (TICK, 1)
        } else {
            (SHORT_CALLS_TICK, short_ticks)
        };
        std::thread::sleep(period);
        engine.increment_epoch();
        shared.ticks.fetch_add(ticks, Ordering::Relaxed);
        if shared.active.load(Ordering::SeqCst) > 0 {
            idle_ticks = 0;
            continue;
        }
        idle_ticks += ticks;
        if idle_ticks < IDLE_TICKS_BEFORE_PARK {
            continue;
        }
        let mut guard = shared.lock.lock();
        shared.parked.store(true, Ordering::SeqCst);
        while shared.active.load(Ordering::SeqCst) == 0 && !shared.stop.load(Ordering::SeqCst) {
            shared.wake.wait_for(&mut guard, Duration::from_millis(500));
        }
        shared.parked.store(false, Ordering::SeqCst);
        idle_ticks = 0;
    }
}
