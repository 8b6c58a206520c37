//! The native floor for Wasmbeam's benchmarks: plain Wasmtime (the same
//! version, through the workspace dependency) doing what a bench measures
//! through Wasmbeam, on the same WAT module, with the same sampling method
//! as `bench/support/harness.ex`.
//!
//! ```text
//! native_baseline <scenario> <wat-file> [--samples N] [--min-batch-ns NS] [--warmup-ms MS] [--raw]
//!
//! scenarios:
//!   call         calls the export `add(i32, i32) -> i32` of the module with (1, 2)
//!   instantiate  instantiates the module (it must have no imports)
//!   all          both
//!   cold_start   compile (`Module::new`), serialize, and load back with
//!                `Module::deserialize_file` (memory-mapped) and
//!                `Module::deserialize` (from bytes), with Wasmbeam's default
//!                engine; the file may be a large `.wasm` binary
//!   compilers    compile, instantiate + first call of `add(1, 2)` and
//!                steady calls of `fib(20)` (when the module exports them),
//!                under Cranelift, Winch and Pulley
//!   host_call    the module must import `env.id (i32) -> i32` and export
//!                `add` and `via_id(x)`, which calls `id` once: a plain
//!                `add` call, then `via_id(7)` with `id` as a synchronous
//!                host function, as an async one that answers at once, and
//!                as an async one that suspends the guest's fiber until the
//!                driving loop hands it the answer (Wasmbeam's shape, with
//!                no BEAM in between)
//!   component    the component of `bench/fixtures/component.wat` (a
//!                component WAT or binary exporting `add`, `greet`,
//!                `echo-bytes` and `run`, importing `log`), through
//!                `wasmtime::component` on Wasmbeam's default engine (epoch
//!                interruption, no fuel): each call through the dynamic
//!                `Func::call_async` with `Val`s and through `TypedFunc`,
//!                the host call `run` -> `log` with `log` ready at once
//!                and suspending, and instantiation with
//!                `Linker::instantiate_async` and `InstancePre`
//! ```
//!
//! `--min-batch-ns 0` skips calibration (batches of one operation), for
//! operations that take seconds, such as compiling a 20 MB module.
//!
//! Output, on stdout: comment lines start with `#`; the others are one
//! measurement each, whitespace-separated:
//!
//! ```text
//! name median_ns p99_ns min_ns ops_per_s batch samples
//! ```
//!
//! With `--raw`, each is followed by `raw name batch s1 s2 ...`: every
//! per-operation sample in ns (sorted), so that a caller can pool the samples
//! of several runs (`bench/support/harness.ex` interleaves short runs of the
//! baseline with its own rounds).
//!
//! Sampling: after a warm-up, the batch size K is doubled until the fastest
//! of three batches of K operations takes at least `--min-batch-ns`; then
//! `--samples` batches are timed, and each sample is the batch's time divided
//! by K, so that the cost of reading the clock does not dominate
//! sub-microsecond operations. Median, p99 and min are over those
//! per-operation samples; ops/s is the total number of operations over the
//! total measured time.

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::component::{
    Component, ComponentType, Linker as ComponentLinker, Lower, Val as CVal,
};
use wasmtime::{
    Config, Engine, Func, Instance, Linker, Module, OptLevel, RootScope, Store, Strategy,
    TypedFunc, UpdateDeadline, Val,
};

/// Wasmbeam's epoch tick (native/wasmbeam/src/engine.rs).
const TICK: Duration = Duration::from_micros(100);

struct Sampling {
    samples: usize,
    min_batch_ns: u64,
    warmup: Duration,
}

/// Set by `--raw`: print every per-operation sample too.
static RAW: AtomicBool = AtomicBool::new(false);

struct Stats {
    per_op: Vec<f64>,
    median_ns: f64,
    p99_ns: f64,
    min_ns: f64,
    ops_per_s: f64,
    batch: u64,
    samples: usize,
}

fn time_batch(k: u64, op: &mut impl FnMut()) -> u64 {
    let start = Instant::now();
    for _ in 0..k {
        op();
    }
    start.elapsed().as_nanos() as u64
}

fn measure(sampling: &Sampling, mut op: impl FnMut()) -> Stats {
    let warm_until = Instant::now() + sampling.warmup;
    while Instant::now() < warm_until {
        op();
    }
    // The best of three timings decides, so that one batch slowed down by
    // something else does not fix K too small for the whole run.
    let mut batch = 1u64;
    while sampling.min_batch_ns > 0
        && batch < 1 << 24
        && (0..3)
            .map(|_| time_batch(batch, &mut op))
            .min()
            .unwrap_or(0)
            < sampling.min_batch_ns
    {
        batch *= 2;
    }
    let mut per_op = Vec::with_capacity(sampling.samples);
    let mut total_ns = 0u64;
    for _ in 0..sampling.samples {
        let ns = time_batch(batch, &mut op);
        total_ns += ns;
        per_op.push(ns as f64 / batch as f64);
    }
    per_op.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let i = (q * per_op.len() as f64).ceil() as usize;
        per_op[i.clamp(1, per_op.len()) - 1]
    };
    Stats {
        median_ns: rank(0.5),
        p99_ns: rank(0.99),
        min_ns: per_op[0],
        ops_per_s: (batch * sampling.samples as u64) as f64 * 1e9 / total_ns.max(1) as f64,
        batch,
        samples: sampling.samples,
        per_op,
    }
}

fn report(name: &str, s: &Stats) {
    println!(
        "{name} {:.1} {:.1} {:.1} {:.0} {} {}",
        s.median_ns, s.p99_ns, s.min_ns, s.ops_per_s, s.batch, s.samples
    );
    if RAW.load(Ordering::Relaxed) {
        let mut line = format!("raw {name} {}", s.batch);
        for ns in &s.per_op {
            line.push_str(&format!(" {ns:.1}"));
        }
        println!("{line}");
    }
}

/// The configuration of Wasmbeam's default engine
/// (`Wasmbeam.Engine.Config` defaults, native/wasmbeam/src/engine.rs).
fn wasmbeam_config(epoch_interruption: bool) -> Config {
    let mut c = Config::new();
    c.strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .consume_fuel(false)
        .epoch_interruption(epoch_interruption)
        .parallel_compilation(true)
        .max_wasm_stack(512 * 1024)
        .async_stack_size(2 * 1024 * 1024)
        .wasm_simd(true)
        .wasm_relaxed_simd(true)
        .wasm_multi_value(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_multi_memory(true)
        .wasm_memory64(false)
        .wasm_threads(false)
        .wasm_tail_call(true)
        .wasm_extended_const(true)
        .wasm_function_references(false)
        .wasm_gc(false)
        .wasm_exceptions(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false);
    c
}

/// Advances the engine's epoch every [`TICK`], as Wasmbeam's ticker does
/// while calls run, so that the async variants pay for the same
/// occasional yields.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls a future to completion with a no-op waker: a `Pending` (an epoch
/// yield) is polled again at once, as a Wasmbeam caller resumes on
/// `:continue`.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn async_store<T: Send>(engine: &Engine, data: T) -> Store<T> {
    let mut store = Store::new(engine, data);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

fn add_of<T>(store: &mut Store<T>, instance: &Instance) -> wasmtime::Result<Func> {
    instance
        .get_func(&mut *store, "add")
        .ok_or_else(|| wasmtime::Error::msg("the module has no export named \"add\""))
}

fn check(result: &[Val]) {
    match result {
        [Val::I32(3)] => {}
        other => panic!("add(1, 2) returned {other:?}"),
    }
}

/// State shaped like Wasmbeam's `StoreData`.
struct ShapedData {
    deadline: Option<Instant>,
    timed_out: bool,
    cancel: Arc<AtomicBool>,
}

type ShapedStore = Store<ShapedData>;
type ShapedFuture = Pin<Box<dyn Future<Output = (ShapedStore, wasmtime::Result<Vec<Val>>)> + Send>>;

/// What `Wasmbeam.Func.call` does on the Rust side, without the NIF
/// boundary and term decoding/encoding: lock the store's mutex, take the
/// store out, set the deadline, register with the ticker, box a future that
/// owns the store, run the call on a fiber inside a `RootScope` with `Vec`
/// arguments and results, time the poll, and put the store back.
fn shaped_call(
    state: &Mutex<Option<ShapedStore>>,
    active: &AtomicUsize,
    func: Func,
    args: Vec<Val>,
) -> Vec<Val> {
    let mut guard = state.lock().expect("state lock");
    let mut store = guard.take().expect("idle store");
    let data = store.data_mut();
    data.deadline = None;
    data.timed_out = false;
    data.cancel.store(false, Ordering::Relaxed);
    store.set_epoch_deadline(1);
    active.fetch_add(1, Ordering::SeqCst);
    let mut future: ShapedFuture = Box::pin(async move {
        let result = async {
            let mut scope = RootScope::new(&mut store);
            let mut out = vec![Val::I32(0); 1];
            func.call_async(&mut scope, &args, &mut out).await?;
            Ok(out)
        }
        .await;
        (store, result)
    });
    let mut cx = Context::from_waker(Waker::noop());
    let (store, result) = loop {
        let began = Instant::now();
        let polled = future.as_mut().poll(&mut cx);
        black_box(began.elapsed().as_micros());
        if let Poll::Ready(done) = polled {
            break done;
        }
    };
    active.fetch_sub(1, Ordering::SeqCst);
    *guard = Some(store);
    result.expect("add")
}

fn bench_call(sampling: &Sampling, wat: &[u8]) -> wasmtime::Result<()> {
    let sync_engine = Engine::new(&wasmbeam_config(false))?;
    let module = Module::new(&sync_engine, wat)?;
    let mut store = Store::new(&sync_engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;

    let typed: TypedFunc<(i32, i32), i32> = instance.get_typed_func(&mut store, "add")?;
    report(
        "typed_call",
        &measure(sampling, || {
            let r = typed.call(&mut store, black_box((1, 2))).expect("add");
            assert_eq!(r, 3);
        }),
    );

    let func = add_of(&mut store, &instance)?;
    report(
        "untyped_call",
        &measure(sampling, || {
            let mut out = [Val::I32(0)];
            func.call(&mut store, black_box(&[Val::I32(1), Val::I32(2)]), &mut out)
                .expect("add");
            check(&out);
        }),
    );

    let engine = Engine::new(&wasmbeam_config(true))?;
    let module = Module::new(&engine, wat)?;
    let _ticker = Ticker::start(&engine);
    let mut store = async_store(&engine, ());
    let instance = block_on(Instance::new_async(&mut store, &module, &[]))?;

    let typed: TypedFunc<(i32, i32), i32> = instance.get_typed_func(&mut store, "add")?;
    report(
        "typed_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let r = block_on(typed.call_async(&mut store, black_box((1, 2)))).expect("add");
            assert_eq!(r, 3);
        }),
    );

    let func = add_of(&mut store, &instance)?;
    report(
        "untyped_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let mut out = [Val::I32(0)];
            let args = black_box([Val::I32(1), Val::I32(2)]);
            block_on(func.call_async(&mut store, &args, &mut out)).expect("add");
            check(&out);
        }),
    );

    // Wasmbeam's stores use an epoch callback that answers `Yield(1)`
    // rather than `epoch_deadline_async_yield_and_update`.
    let cancel = Arc::new(AtomicBool::new(false));
    let data = ShapedData {
        deadline: None,
        timed_out: false,
        cancel,
    };
    let mut shaped = Store::new(&engine, data);
    shaped.epoch_deadline_callback(|mut ctx| {
        let data = ctx.data_mut();
        if data.cancel.load(Ordering::Relaxed) {
            return Err(wasmtime::Error::msg("cancelled"));
        }
        if let Some(deadline) = data.deadline {
            if Instant::now() >= deadline {
                data.timed_out = true;
                return Err(wasmtime::Error::msg("timeout"));
            }
        }
        Ok(UpdateDeadline::Yield(1))
    });
    let instance = block_on(Instance::new_async(&mut shaped, &module, &[]))?;
    let func = add_of(&mut shaped, &instance)?;
    let state = Mutex::new(Some(shaped));
    let active = AtomicUsize::new(0);
    report(
        "wasmbeam_shaped_call",
        &measure(sampling, || {
            let out = shaped_call(&state, &active, func, vec![Val::I32(1), Val::I32(2)]);
            check(&out);
        }),
    );
    Ok(())
}

fn bench_instantiate(sampling: &Sampling, wat: &[u8]) -> wasmtime::Result<()> {
    let sync_engine = Engine::new(&wasmbeam_config(false))?;
    let module = Module::new(&sync_engine, wat)?;
    report(
        "instantiate",
        &measure(sampling, || {
            let mut store = Store::new(&sync_engine, ());
            let instance = Instance::new(&mut store, &module, &[]).expect("instantiate");
            black_box(instance);
        }),
    );

    let linker: Linker<()> = Linker::new(&sync_engine);
    let pre = linker.instantiate_pre(&module)?;
    report(
        "instantiate_pre",
        &measure(sampling, || {
            let mut store = Store::new(&sync_engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            black_box(instance);
        }),
    );

    let engine = Engine::new(&wasmbeam_config(true))?;
    let module = Module::new(&engine, wat)?;
    let _ticker = Ticker::start(&engine);
    report(
        "instantiate_async",
        &measure(sampling, || {
            let mut store = async_store(&engine, ());
            store.set_epoch_deadline(1);
            let instance =
                block_on(Instance::new_async(&mut store, &module, &[])).expect("instantiate");
            black_box(instance);
        }),
    );
    Ok(())
}

/// Wasmbeam's engine configuration for each compiler, as
/// `Wasmbeam.Engine.Config` builds it (a Winch engine leaves out the
/// proposals Winch does not implement).
fn strategy_config(strategy: &str) -> wasmtime::Result<Config> {
    let mut c = wasmbeam_config(true);
    match strategy {
        "cranelift" => {}
        "winch" => {
            c.strategy(Strategy::Winch)
                .wasm_relaxed_simd(false)
                .wasm_tail_call(false);
        }
        "pulley" => {
            c.target("pulley64")?;
        }
        other => wasmtime::bail!("unknown strategy {other}"),
    }
    Ok(c)
}

fn bench_cold_start(sampling: &Sampling, bytes: &[u8]) -> wasmtime::Result<()> {
    let engine = Engine::new(&wasmbeam_config(true))?;
    report(
        "compile",
        &measure(sampling, || {
            black_box(Module::new(&engine, bytes).expect("compile"));
        }),
    );
    let serialized = Module::new(&engine, bytes)?.serialize()?;
    let path = std::env::temp_dir().join(format!("native_baseline_{}.cwasm", std::process::id()));
    std::fs::write(&path, &serialized)?;
    report(
        "deserialize_file",
        &measure(sampling, || {
            // SAFETY: the file was just written from `serialize` by this
            // process, for this engine.
            black_box(unsafe { Module::deserialize_file(&engine, &path) }.expect("load"));
        }),
    );
    report(
        "deserialize",
        &measure(sampling, || {
            // SAFETY: as above, from memory.
            black_box(unsafe { Module::deserialize(&engine, &serialized) }.expect("load"));
        }),
    );
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn bench_compilers(sampling: &Sampling, bytes: &[u8]) -> wasmtime::Result<()> {
    for strategy in ["cranelift", "winch", "pulley"] {
        let engine = Engine::new(&strategy_config(strategy)?)?;
        report(
            &format!("compile_{strategy}"),
            &measure(sampling, || {
                black_box(Module::new(&engine, bytes).expect("compile"));
            }),
        );
        let module = Module::new(&engine, bytes)?;
        if module.get_export("add").is_none() {
            continue;
        }
        let _ticker = Ticker::start(&engine);
        report(
            &format!("first_call_{strategy}"),
            &measure(sampling, || {
                let mut store = async_store(&engine, ());
                store.set_epoch_deadline(1);
                let instance =
                    block_on(Instance::new_async(&mut store, &module, &[])).expect("instantiate");
                let add = instance
                    .get_typed_func::<(i32, i32), i32>(&mut store, "add")
                    .expect("add");
                assert_eq!(
                    block_on(add.call_async(&mut store, (1, 2))).expect("call"),
                    3
                );
            }),
        );
        if module.get_export("fib").is_none() {
            continue;
        }
        let mut store = async_store(&engine, ());
        store.set_epoch_deadline(1);
        let instance = block_on(Instance::new_async(&mut store, &module, &[]))?;
        let fib = instance.get_typed_func::<i32, i32>(&mut store, "fib")?;
        report(
            &format!("fib20_{strategy}"),
            &measure(sampling, || {
                store.set_epoch_deadline(1);
                assert_eq!(block_on(fib.call_async(&mut store, 20)).expect("fib"), 6765);
            }),
        );
    }
    Ok(())
}

/// Where the suspending host function and its driving loop meet: the
/// host function leaves its argument and waits; the loop answers.
#[derive(Default)]
struct Handoff {
    request: Option<i32>,
    answer: Option<i32>,
}

/// The host function `id` that suspends: on its first poll it leaves its
/// argument in the hand-off slot and returns `Pending` (the fiber
/// suspends and the outer poll returns); when polled again it takes the
/// answer.
fn suspending_id(handoff: Arc<Mutex<Handoff>>, x: i32) -> impl Future<Output = i32> {
    let mut asked = false;
    std::future::poll_fn(move |_| {
        let mut slot = handoff.lock().expect("hand-off lock");
        if !asked {
            asked = true;
            slot.request = Some(x);
            return Poll::Pending;
        }
        match slot.answer.take() {
            Some(y) => Poll::Ready(y),
            None => Poll::Pending,
        }
    })
}

fn bench_host_call(sampling: &Sampling, wat: &[u8]) -> wasmtime::Result<()> {
    let id_type = |engine: &Engine| {
        wasmtime::FuncType::new(engine, [wasmtime::ValType::I32], [wasmtime::ValType::I32])
    };
    let check7 = |out: &[Val]| match out {
        [Val::I32(7)] => {}
        other => panic!("via_id(7) returned {other:?}"),
    };

    let sync_engine = Engine::new(&wasmbeam_config(false))?;
    let module = Module::new(&sync_engine, wat)?;
    let mut store = Store::new(&sync_engine, ());
    let id = Func::wrap(&mut store, |x: i32| x);
    let instance = Instance::new(&mut store, &module, &[id.into()])?;
    let via = instance
        .get_func(&mut store, "via_id")
        .ok_or_else(|| wasmtime::Error::msg("the module has no export named \"via_id\""))?;
    report(
        "host_call_sync",
        &measure(sampling, || {
            let mut out = [Val::I32(0)];
            via.call(&mut store, black_box(&[Val::I32(7)]), &mut out)
                .expect("via_id");
            check7(&out);
        }),
    );

    let engine = Engine::new(&wasmbeam_config(true))?;
    let module = Module::new(&engine, wat)?;
    let _ticker = Ticker::start(&engine);

    // An async host function whose future is ready at once.
    let mut store = async_store(&engine, ());
    let ty = id_type(&engine);
    let id = Func::new_async(&mut store, ty, |_caller, params, results| {
        Box::new(async move {
            results[0] = params[0];
            Ok(())
        })
    });
    let instance = block_on(Instance::new_async(&mut store, &module, &[id.into()]))?;
    let add = add_of(&mut store, &instance)?;
    let via = instance
        .get_func(&mut store, "via_id")
        .ok_or_else(|| wasmtime::Error::msg("no via_id"))?;
    report(
        "untyped_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let mut out = [Val::I32(0)];
            let args = black_box([Val::I32(1), Val::I32(2)]);
            block_on(add.call_async(&mut store, &args, &mut out)).expect("add");
            check(&out);
        }),
    );
    report(
        "host_call_async_ready",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let mut out = [Val::I32(0)];
            block_on(via.call_async(&mut store, black_box(&[Val::I32(7)]), &mut out))
                .expect("via_id");
            check7(&out);
        }),
    );

    // An async host function that suspends the guest until the driving
    // loop answers: the loop polls, finds the request, writes the answer
    // and polls again, as a Wasmbeam driver does across two NIF calls.
    let handoff = Arc::new(Mutex::new(Handoff::default()));
    let mut store = async_store(&engine, ());
    let ty = id_type(&engine);
    let shared = handoff.clone();
    let id = Func::new_async(&mut store, ty, move |_caller, params, results| {
        let x = params[0].unwrap_i32();
        let answer = suspending_id(shared.clone(), x);
        Box::new(async move {
            results[0] = Val::I32(answer.await);
            Ok(())
        })
    });
    let instance = block_on(Instance::new_async(&mut store, &module, &[id.into()]))?;
    let via = instance
        .get_func(&mut store, "via_id")
        .ok_or_else(|| wasmtime::Error::msg("no via_id"))?;
    report(
        "host_call_async_suspend",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let mut out = [Val::I32(0)];
            let args = [Val::I32(7)];
            let mut cx = Context::from_waker(Waker::noop());
            let mut future = Box::pin(via.call_async(&mut store, black_box(&args), &mut out));
            loop {
                match future.as_mut().poll(&mut cx) {
                    Poll::Ready(result) => {
                        result.expect("via_id");
                        break;
                    }
                    Poll::Pending => {
                        let mut slot = handoff.lock().expect("hand-off lock");
                        if let Some(x) = slot.request.take() {
                            slot.answer = Some(x);
                        }
                    }
                }
            }
            drop(future);
            check7(&out);
        }),
    );
    Ok(())
}

/// `person` of bench/fixtures/component.wat, for the typed `greet`.
#[derive(ComponentType, Lower)]
#[component(record)]
struct Person {
    name: String,
    age: u32,
}

/// The name `greet` is called with (and returns).
const GREET_NAME: &str = "Ada Lovelace";
/// The size of the `echo-bytes` argument: 1 MiB.
const ECHO_BYTES: usize = 1 << 20;

/// A component's exported function by name.
fn component_func(
    store: &mut Store<()>,
    instance: &wasmtime::component::Instance,
    name: &str,
) -> wasmtime::Result<wasmtime::component::Func> {
    instance
        .get_func(&mut *store, name)
        .ok_or_else(|| wasmtime::Error::msg(format!("the component exports no function {name}")))
}

/// A linker for the component's one import, `log: func(msg: u32) -> u32`,
/// defined the way Wasmbeam defines component imports (`func_new_async`,
/// dynamic `Val`s) with a future that is ready at once.
fn component_linker(engine: &Engine) -> wasmtime::Result<ComponentLinker<()>> {
    let mut linker = ComponentLinker::new(engine);
    linker
        .root()
        .func_new_async("log", |_store, _ty, params, results| {
            Box::new(async move {
                results[0] = params[0].clone();
                Ok(())
            })
        })?;
    Ok(linker)
}

fn bench_component(sampling: &Sampling, wat: &[u8]) -> wasmtime::Result<()> {
    let engine = Engine::new(&wasmbeam_config(true))?;
    let component = Component::new(&engine, wat)?;
    let _ticker = Ticker::start(&engine);

    let linker = component_linker(&engine)?;
    let mut store = async_store(&engine, ());
    let instance = block_on(linker.instantiate_async(&mut store, &component))?;

    // add(1, 2): the component counterpart of the core `add` rows.
    let add = component_func(&mut store, &instance, "add")?;
    report(
        "component_add_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let mut out = [CVal::Bool(false)];
            let args = black_box([CVal::U32(1), CVal::U32(2)]);
            block_on(add.call_async(&mut store, &args, &mut out)).expect("add");
            assert!(matches!(out, [CVal::U32(3)]), "add(1, 2) returned {out:?}");
        }),
    );
    let typed = add.typed::<(u32, u32), (u32,)>(&store)?;
    report(
        "component_add_typed_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let (r,) = block_on(typed.call_async(&mut store, black_box((1, 2)))).expect("add");
            assert_eq!(r, 3);
        }),
    );

    // greet(%{name, age}) -> name: a record with a string in, a string out.
    let greet = component_func(&mut store, &instance, "greet")?;
    report(
        "component_greet_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let person = CVal::Record(vec![
                ("name".to_string(), CVal::String(GREET_NAME.to_string())),
                ("age".to_string(), CVal::U32(36)),
            ]);
            let mut out = [CVal::Bool(false)];
            block_on(greet.call_async(&mut store, black_box(&[person]), &mut out)).expect("greet");
            assert!(matches!(&out, [CVal::String(s)] if s == GREET_NAME));
        }),
    );
    let typed = greet.typed::<(Person,), (String,)>(&store)?;
    report(
        "component_greet_typed_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let person = Person {
                name: GREET_NAME.to_string(),
                age: 36,
            };
            let (name,) =
                block_on(typed.call_async(&mut store, black_box((person,)))).expect("greet");
            assert_eq!(name, GREET_NAME);
        }),
    );

    // echo-bytes(1 MiB) -> the same 1 MiB. Typed (what Wasmbeam's fast path
    // does; the argument lent as a slice, the result a new `Vec<u8>`), then
    // dynamic, a `Val` per byte (what a generic binding would do), with a
    // hundredth of the samples: each call takes a tenth of a second.
    let echo = component_func(&mut store, &instance, "echo-bytes")?;
    let input: Vec<u8> = (0..ECHO_BYTES).map(|i| (i % 251) as u8).collect();
    let typed = echo.typed::<(&[u8],), (Vec<u8>,)>(&store)?;
    report(
        "component_echo_1mib_typed_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let (out,) = block_on(typed.call_async(&mut store, (black_box(input.as_slice()),)))
                .expect("echo-bytes");
            assert_eq!(out.len(), ECHO_BYTES);
        }),
    );
    // What Wasmbeam's typed path does around that call, without the NIF:
    // the argument copied out of the caller's binary into a `Vec<u8>`, the
    // function typed again on every call (`Func::typed` checks the type),
    // the result copied into a new buffer (as into an Erlang binary).
    report(
        "component_echo_1mib_typed_vec_call_async",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let arg = black_box(&input).clone();
            let typed = echo
                .typed::<(Vec<u8>,), (Vec<u8>,)>(&store)
                .expect("echo-bytes type");
            let (out,) = block_on(typed.call_async(&mut store, (arg,))).expect("echo-bytes");
            let copy = black_box(out.as_slice()).to_vec();
            assert_eq!(copy.len(), ECHO_BYTES);
        }),
    );
    let few = Sampling {
        samples: (sampling.samples / 100).max(1),
        min_batch_ns: sampling.min_batch_ns,
        warmup: sampling.warmup,
    };
    report(
        "component_echo_1mib_call_async",
        &measure(&few, || {
            store.set_epoch_deadline(1);
            let list = CVal::List(input.iter().map(|&b| CVal::U8(b)).collect());
            let mut out = [CVal::Bool(false)];
            block_on(echo.call_async(&mut store, black_box(&[list]), &mut out))
                .expect("echo-bytes");
            assert!(matches!(&out, [CVal::List(l)] if l.len() == ECHO_BYTES));
        }),
    );

    // run(7) -> log(7): one host call, `log` defined as Wasmbeam defines it
    // (dynamic, async) and ready at once.
    let run = component_func(&mut store, &instance, "run")?;
    report(
        "component_run_host_ready",
        &measure(sampling, || {
            store.set_epoch_deadline(1);
            let mut out = [CVal::Bool(false)];
            block_on(run.call_async(&mut store, black_box(&[CVal::U32(7)]), &mut out))
                .expect("run");
            assert!(matches!(out, [CVal::U32(7)]), "run(7) returned {out:?}");
        }),
    );

    // The same with `log` suspending the guest's fiber until the driving
    // loop answers: Wasmbeam's shape (the answer comes from a handler in
    // Elixir, across two NIF calls), without the BEAM.
    let handoff = Arc::new(Mutex::new(Handoff::default()));
    let mut suspend_linker: ComponentLinker<()> = ComponentLinker::new(&engine);
    let shared = handoff.clone();
    suspend_linker
        .root()
        .func_new_async("log", move |_store, _ty, params, results| {
            let x = match params {
                [CVal::U32(x)] => *x as i32,
                other => panic!("log got {other:?}"),
            };
            let answer = suspending_id(shared.clone(), x);
            Box::new(async move {
                results[0] = CVal::U32(answer.await as u32);
                Ok(())
            })
        })?;
    let mut suspend_store = async_store(&engine, ());
    let suspend_instance =
        block_on(suspend_linker.instantiate_async(&mut suspend_store, &component))?;
    let run = component_func(&mut suspend_store, &suspend_instance, "run")?;
    report(
        "component_run_host_suspend",
        &measure(sampling, || {
            suspend_store.set_epoch_deadline(1);
            let mut out = [CVal::Bool(false)];
            let args = [CVal::U32(7)];
            let mut cx = Context::from_waker(Waker::noop());
            let mut future =
                Box::pin(run.call_async(&mut suspend_store, black_box(&args), &mut out));
            loop {
                match future.as_mut().poll(&mut cx) {
                    Poll::Ready(result) => {
                        result.expect("run");
                        break;
                    }
                    Poll::Pending => {
                        let mut slot = handoff.lock().expect("hand-off lock");
                        if let Some(x) = slot.request.take() {
                            slot.answer = Some(x);
                        }
                    }
                }
            }
            drop(future);
            assert!(matches!(out, [CVal::U32(7)]), "run(7) returned {out:?}");
        }),
    );

    // Typed both ways: `log` with `func_wrap_async`, `run` as a `TypedFunc`.
    let mut typed_linker: ComponentLinker<()> = ComponentLinker::new(&engine);
    typed_linker
        .root()
        .func_wrap_async("log", |_store, (x,): (u32,)| {
            Box::new(async move { Ok((x,)) })
        })?;
    let mut typed_store = async_store(&engine, ());
    let typed_instance = block_on(typed_linker.instantiate_async(&mut typed_store, &component))?;
    let run = component_func(&mut typed_store, &typed_instance, "run")?
        .typed::<(u32,), (u32,)>(&typed_store)?;
    report(
        "component_run_host_typed",
        &measure(sampling, || {
            typed_store.set_epoch_deadline(1);
            let (r,) = block_on(run.call_async(&mut typed_store, black_box((7,)))).expect("run");
            assert_eq!(r, 7);
        }),
    );

    // Instantiation, a new store each time (with `log` linked as above).
    report(
        "component_instantiate_async",
        &measure(sampling, || {
            let mut store = async_store(&engine, ());
            store.set_epoch_deadline(1);
            let instance =
                block_on(linker.instantiate_async(&mut store, &component)).expect("instantiate");
            black_box(instance);
        }),
    );
    let pre = linker.instantiate_pre(&component)?;
    report(
        "component_instance_pre_async",
        &measure(sampling, || {
            let mut store = async_store(&engine, ());
            store.set_epoch_deadline(1);
            let instance = block_on(pre.instantiate_async(&mut store)).expect("instantiate");
            black_box(instance);
        }),
    );
    Ok(())
}

const USAGE: &str =
    "usage: native_baseline <call|instantiate|all|cold_start|compilers|host_call|component> <wat-file> \
                     [--samples N] [--min-batch-ns NS] [--warmup-ms MS] [--raw]";

fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<(String, String, Sampling), String> {
    let mut positional = Vec::new();
    let mut sampling = Sampling {
        samples: 5000,
        min_batch_ns: 10_000,
        warmup: Duration::from_millis(200),
    };
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match arg.as_str() {
            "--samples" => sampling.samples = number("--samples")?.max(1) as usize,
            "--min-batch-ns" => sampling.min_batch_ns = number("--min-batch-ns")?,
            "--warmup-ms" => sampling.warmup = Duration::from_millis(number("--warmup-ms")?),
            "--raw" => RAW.store(true, Ordering::Relaxed),
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg),
        }
    }
    match <[String; 2]>::try_from(positional) {
        Ok([scenario, wat]) => Ok((scenario, wat, sampling)),
        Err(_) => Err(USAGE.into()),
    }
}

fn run() -> Result<(), String> {
    let (scenario, path, sampling) = parse_args(std::env::args().skip(1))?;
    let wat = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    println!(
        "# native_baseline: wasmtime 48.0.8, scenario {scenario}, {path}, {} samples, \
         batches of at least {} ns, warm-up {} ms",
        sampling.samples,
        sampling.min_batch_ns,
        sampling.warmup.as_millis()
    );
    println!("# name median_ns p99_ns min_ns ops_per_s batch samples");
    let failed = |e: wasmtime::Error| format!("{e:?}");
    match scenario.as_str() {
        "call" => bench_call(&sampling, &wat).map_err(failed),
        "instantiate" => bench_instantiate(&sampling, &wat).map_err(failed),
        "all" => bench_call(&sampling, &wat)
            .and_then(|()| bench_instantiate(&sampling, &wat))
            .map_err(failed),
        "cold_start" => bench_cold_start(&sampling, &wat).map_err(failed),
        "compilers" => bench_compilers(&sampling, &wat).map_err(failed),
        "host_call" => bench_host_call(&sampling, &wat).map_err(failed),
        "component" => bench_component(&sampling, &wat).map_err(failed),
        other => Err(format!("unknown scenario {other:?}\n{USAGE}")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("native_baseline: {message}");
            ExitCode::FAILURE
        }
    }
}
