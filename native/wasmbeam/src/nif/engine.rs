//! Engines: a Wasmtime `Engine` built from a validated configuration,
//! with its place on the shared epoch ticker that time-slices every store.

use crate::handle;
use crate::nif::error::reply;
use crate::nif::handle_arg::Handle;
use crate::resources::atoms;
use crate::resources::engine::EngineResource;
use rustler::{Atom, Encoder, Env, NifMap, ResourceArc, Term};
use std::sync::Arc;
use wasmbeam_runtime::driver::engine::EngineCore;
use wasmbeam_runtime::driver::error::{chain_message, guard, Kind, WbError, WbResult};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
    WasmBacktraceDetails,
};

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

fn build_config(cfg: &EngineConfig) -> WbResult<Config> {
    let mut c = Config::new();
    match cfg.strategy {
        s if s == atoms::cranelift() => {
            c.strategy(Strategy::Cranelift);
        }
        s if s == atoms::winch() => {
            c.strategy(Strategy::Winch);
        }
        s if s == atoms::pulley() => {
            c.target("pulley64")
                .map_err(|e| WbError::new(Kind::Argument, e.to_string()))?;
        }
        _ => return Err(WbError::new(Kind::Argument, "unknown compiler strategy")),
    }
    let level = match cfg.opt_level {
        l if l == atoms::none() => OptLevel::None,
        l if l == atoms::speed() => OptLevel::Speed,
        l if l == atoms::speed_and_size() => OptLevel::SpeedAndSize,
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
            format!("invalid engine configuration: {}", chain_message(&e)),
        )
    })?;
    Ok(ResourceArc::new(EngineResource {
        core: Arc::new(EngineCore::new(
            engine,
            cfg.consume_fuel,
            cfg.epoch_interruption,
            cfg.ticker_realtime,
        )),
    }))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn engine_new(env: Env, config: EngineConfig) -> Term {
    reply(env, guard(|| new_engine(config)))
}

/// Whether the engine's epoch ticker runs at real-time priority.
#[rustler::nif]
fn engine_ticker_realtime(env: Env, engine: Handle<EngineResource>) -> Term {
    let engine = handle!(env, engine, "engine");
    engine.core.ticker.realtime.encode(env)
}

/// Identifies the code-generation settings of an engine: engines with
/// different values cannot load each other's serialized modules; equal
/// values make it overwhelmingly likely that they can (Wasmtime still checks
/// its own header on load). The first 64 bits of the fingerprint the module
/// cache keys its files by: one definition of "same engine".
#[rustler::nif]
fn engine_compatibility_hash(env: Env, engine: Handle<EngineResource>) -> Term {
    let engine = handle!(env, engine, "engine");
    let fingerprint = crate::nif::cache::engine_fingerprint(engine.engine());
    let first: [u8; 8] = fingerprint.as_bytes()[..8].try_into().expect("32 bytes");
    u64::from_le_bytes(first).encode(env)
}
