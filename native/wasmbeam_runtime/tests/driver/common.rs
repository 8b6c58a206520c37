//! What every test file needs: an engine, a store whose `StoreEvents`
//! record what they are told, a `Notify` that records what a "NIF call"
//! was told, and the loop a BEAM process runs on `Step`s.
//!
//! Processes are plain `u64` tokens. Waiting for something another thread
//! does is always a channel receive with a generous timeout, never a sleep.

#![allow(dead_code)]

use std::any::Any;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmbeam_runtime::domain::host_funcs::HostFuncSpec;
use wasmbeam_runtime::domain::imports::{self, ImportSpec};
use wasmbeam_runtime::domain::signature::Signature;
use wasmbeam_runtime::driver::engine::EngineCore;
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmbeam_runtime::driver::host_slot::{
    Answer, FailureCause, HandlerFailure, HostArgs, HostImport, HostRequest, OpResult,
};
use wasmbeam_runtime::driver::store::{
    Begin, Notify, Outcome, Polled, RunFuture, RunOptions, Step, StoreCore,
};
use wasmbeam_runtime::driver::store_data::StoreLimitsSpec;
use wasmbeam_runtime::driver::values::{Arg, Args, Out, Outs};
use wasmbeam_runtime::driver::wake::StoreEvents;
use wasmtime::{Config, Engine, Func, Instance, Module, Val, ValType};

/// How long a test waits for another thread before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The registry id every test host function claims (opaque to the driver).
pub const REGISTRY: u64 = 7;

// -- Engines and stores ------------------------------------------------------

/// An engine with an epoch ticker (not real-time: tests must not ask the OS
/// for scheduling privileges).
pub fn engine_with(consume_fuel: bool, epoch_interruption: bool) -> Arc<EngineCore> {
    let mut config = Config::new();
    config
        .consume_fuel(consume_fuel)
        .epoch_interruption(epoch_interruption);
    let engine = Engine::new(&config).expect("engine");
    Arc::new(EngineCore::new(
        engine,
        consume_fuel,
        epoch_interruption,
        false,
    ))
}

/// The usual engine: epoch interruption on, no fuel.
pub fn engine() -> Arc<EngineCore> {
    engine_with(false, true)
}

pub fn module(engine: &EngineCore, wat: &str) -> Module {
    let bytes = wat::parse_str(wat).expect("valid WAT");
    Module::new(&engine.engine, bytes).expect("module compiles")
}

/// What a store's `StoreEvents` were told, as channels (they are called
/// from other threads: the reaper, pipe writers).
pub struct EventsRx {
    /// Tokens `io_ready` was called with.
    pub io: Receiver<u64>,
    /// `store_free` calls: the waiters, and the name of the thread that
    /// made the call.
    pub free: Receiver<(Vec<u64>, Option<String>)>,
    pub streamed: Receiver<(Vec<u8>, Vec<u8>)>,
}

pub struct Events {
    io: Sender<u64>,
    free: Sender<(Vec<u64>, Option<String>)>,
    streamed: Sender<(Vec<u8>, Vec<u8>)>,
}

impl StoreEvents for Events {
    fn io_ready(&self, poller: u64) {
        let _ = self.io.send(poller);
    }
    fn store_free(&self, waiters: Vec<u64>) {
        let thread = std::thread::current().name().map(str::to_owned);
        let _ = self.free.send((waiters, thread));
    }
    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>) {
        let _ = self.streamed.send((stdout, stderr));
    }
}

pub fn events() -> (Arc<Events>, EventsRx) {
    let (io_tx, io) = channel();
    let (free_tx, free) = channel();
    let (streamed_tx, streamed) = channel();
    (
        Arc::new(Events {
            io: io_tx,
            free: free_tx,
            streamed: streamed_tx,
        }),
        EventsRx { io, free, streamed },
    )
}

/// What one NIF call's `Notify` was told.
#[derive(Default)]
pub struct Cx {
    pub freed: Mutex<Vec<Vec<u64>>>,
    pub stdout: Mutex<Vec<u8>>,
    pub stderr: Mutex<Vec<u8>>,
}

impl Cx {
    /// Every waiter handed to `store_free`, in order.
    pub fn freed(&self) -> Vec<u64> {
        self.freed.lock().unwrap().concat()
    }
}

impl Notify for Cx {
    fn store_free(&self, waiters: Vec<u64>) {
        self.freed.lock().unwrap().push(waiters);
    }
    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>) {
        self.stdout.lock().unwrap().extend(stdout);
        self.stderr.lock().unwrap().extend(stderr);
    }
}

/// A store and what it reports.
pub struct Fixture {
    pub engine: Arc<EngineCore>,
    pub store: Arc<StoreCore>,
    pub events: EventsRx,
    pub cx: Cx,
}

impl Fixture {
    pub fn new(engine: &Arc<EngineCore>) -> Fixture {
        Fixture::with_limits(engine, &StoreLimitsSpec::default())
    }

    pub fn with_limits(engine: &Arc<EngineCore>, limits: &StoreLimitsSpec) -> Fixture {
        let (ev, rx) = events();
        let store = StoreCore::new(engine.clone(), limits, None, ev).expect("store");
        Fixture {
            engine: engine.clone(),
            store,
            events: rx,
            cx: Cx::default(),
        }
    }

    /// Instantiates `wat` with `specs`, driven to the end by `token`.
    pub fn instance(&self, wat: &str, specs: Vec<ImportSpec>) -> Instance {
        let m = module(&self.engine, wat);
        instantiate(&self.store, 1, &self.cx, &m, specs).expect("instantiation")
    }

    pub fn export(&self, instance: &Instance, name: &str) -> (Func, Signature) {
        export(&self.store, instance, name)
    }

    /// Calls `name` as `token` and drives the call to its end; fails on
    /// anything but time slices.
    pub fn call(&self, token: u64, instance: &Instance, name: &str, args: Args) -> WbResult<Outs> {
        let (func, sig) = self.export(instance, name);
        let begin = start_call(
            &self.store,
            token,
            &RunOptions::default(),
            &self.cx,
            func,
            &sig,
            args,
        )?;
        values(run_plain(&self.store, token, &self.cx, polled(begin))?)
    }
}

// -- Instantiation and calls --------------------------------------------------

/// Instantiates `module` into `store` as a run of `token`: the imports are
/// resolved in the store handed to `make`, like the NIF does.
pub fn start_instantiation(
    store: &Arc<StoreCore>,
    token: u64,
    opts: &RunOptions,
    cx: &dyn Notify,
    module: &Module,
    specs: Vec<ImportSpec>,
) -> WbResult<Begin> {
    let engine = store.engine.clone();
    let store_id = store.id;
    let module = module.clone();
    store.start(token, opts, cx, move |mut s| {
        match imports::resolve(&engine, store_id, &mut s, &module, &specs) {
            Ok(externs) => {
                let future: RunFuture = Box::pin(async move {
                    let result = Instance::new_async(&mut s, &module, &externs).await;
                    let attached: Arc<dyn Any + Send + Sync> = Arc::new(());
                    (s, result.map(|i| Outcome::Instance(i, attached)))
                });
                Ok(future)
            }
            Err(e) => Err((s, e)),
        }
    })
}

pub fn instantiate(
    store: &Arc<StoreCore>,
    token: u64,
    cx: &dyn Notify,
    module: &Module,
    specs: Vec<ImportSpec>,
) -> WbResult<Instance> {
    let begin = start_instantiation(store, token, &RunOptions::default(), cx, module, specs)?;
    match run_plain(store, token, cx, polled(begin))? {
        Outcome::Instance(instance, _) => Ok(instance),
        _ => panic!("an instantiation produced something else"),
    }
}

/// An export and its signature, read from the idle store.
pub fn export(store: &StoreCore, instance: &Instance, name: &str) -> (Func, Signature) {
    store
        .with_idle(|s| {
            let func = instance
                .get_func(&mut *s, name)
                .ok_or_else(|| WbError::new(Kind::NotFound, name.to_string()))?;
            let sig = Signature::of(&func, &*s);
            Ok((func, sig))
        })
        .expect("export")
}

pub fn start_call(
    store: &Arc<StoreCore>,
    token: u64,
    opts: &RunOptions,
    cx: &dyn Notify,
    func: Func,
    sig: &Signature,
    args: Args,
) -> WbResult<Begin> {
    store.start(token, opts, cx, |s| Ok(sig.run(func, s, args)))
}

pub fn polled(begin: Begin) -> Polled {
    match begin {
        Begin::Polled(p) => p,
        Begin::Queued => panic!("expected a poll, the caller was queued"),
    }
}

// -- Driving runs ---------------------------------------------------------------

pub fn describe(step: &Step) -> String {
    match step {
        Step::Done(Ok(Outcome::Values(v))) => format!("Done(Ok({} values))", v.len()),
        Step::Done(Ok(Outcome::Instance(..))) => "Done(Ok(instance))".into(),
        Step::Done(Ok(_)) => "Done(Ok(component outcome))".into(),
        Step::Done(Err(e)) => format!("Done(Err({:?}: {}))", e.kind, e.message),
        Step::Continue => "Continue".into(),
        Step::HostCall(r) => format!("HostCall(id {}, index {})", r.id, r.index),
        Step::OpDone(_) => "OpDone".into(),
        Step::IoWait { ms_left } => format!("IoWait({ms_left:?})"),
    }
}

/// Polls on (as `token`) while the guest only uses time slices; returns
/// the first other step and how many `Continue`s came before it.
pub fn settle_counting(
    store: &Arc<StoreCore>,
    token: u64,
    cx: &dyn Notify,
    first: Polled,
) -> (Step, usize) {
    let mut step = first.step;
    let mut continues = 0;
    while let Step::Continue = step {
        continues += 1;
        step = store.resume(token, cx).expect("resume").step;
    }
    (step, continues)
}

pub fn settle(store: &Arc<StoreCore>, token: u64, cx: &dyn Notify, first: Polled) -> Step {
    settle_counting(store, token, cx, first).0
}

/// Drives a run that makes no host call and waits for no I/O to its end.
pub fn run_plain(
    store: &Arc<StoreCore>,
    token: u64,
    cx: &dyn Notify,
    first: Polled,
) -> WbResult<Outcome> {
    match settle(store, token, cx, first) {
        Step::Done(result) => result,
        other => panic!("expected the run to end, got {}", describe(&other)),
    }
}

pub fn expect_host_call(step: Step) -> HostRequest {
    match step {
        Step::HostCall(request) => request,
        other => panic!("expected a host call, got {}", describe(&other)),
    }
}

pub fn expect_done(step: Step) -> WbResult<Outcome> {
    match step {
        Step::Done(result) => result,
        other => panic!("expected the end of the run, got {}", describe(&other)),
    }
}

pub fn expect_op_done(step: Step) -> OpResult {
    match step {
        Step::OpDone(result) => result,
        other => panic!("expected an operation's result, got {}", describe(&other)),
    }
}

pub fn expect_io_wait(step: Step) -> Option<u64> {
    match step {
        Step::IoWait { ms_left } => ms_left,
        other => panic!("expected an I/O wait, got {}", describe(&other)),
    }
}

pub fn values(outcome: Outcome) -> WbResult<Outs> {
    match outcome {
        Outcome::Values(v) => Ok(v),
        _ => panic!("a call produced something else"),
    }
}

pub fn err_of<T>(result: WbResult<T>) -> WbError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

// -- Values -------------------------------------------------------------------

pub fn i32s(values: &[i32]) -> Args {
    values.iter().map(|v| Arg::Val(Val::I32(*v))).collect()
}

pub fn as_i32(out: &Out) -> i32 {
    match out {
        Out::Val(Val::I32(v)) => *v,
        _ => panic!("expected an i32"),
    }
}

pub fn outs_i32(outs: &Outs) -> Vec<i32> {
    outs.iter().map(as_i32).collect()
}

/// A core host call's arguments, as i32s.
pub fn args_i32(args: &HostArgs) -> Vec<i32> {
    match args {
        HostArgs::Core(outs) => outs_i32(outs),
        HostArgs::Component(..) => panic!("a component's host call"),
    }
}

// -- Host functions -----------------------------------------------------------

pub fn host_func_spec(
    index: usize,
    name: &str,
    params: &[ValType],
    results: &[ValType],
) -> HostFuncSpec {
    HostFuncSpec {
        import: HostImport::new(Arc::new(()), REGISTRY, index, name, results),
        registry: REGISTRY,
        index,
        params: params.to_vec(),
        results: results.to_vec(),
    }
}

pub fn host(index: usize, name: &str, params: &[ValType], results: &[ValType]) -> ImportSpec {
    ImportSpec::DefineFunc(host_func_spec(index, name, params, results))
}

/// Answers host call `id` with `values` as `poller`.
pub fn answer_values(
    store: &Arc<StoreCore>,
    poller: u64,
    id: u64,
    values: Args,
    cx: &dyn Notify,
) -> WbResult<Polled> {
    store.answer(poller, id, move |_| Answer::Values(values), cx)
}

pub fn answer_failed(
    store: &Arc<StoreCore>,
    poller: u64,
    id: u64,
    why: &str,
    cx: &dyn Notify,
) -> WbResult<Polled> {
    let why = why.to_string();
    store.answer(
        poller,
        id,
        move |_| {
            Answer::Failed(HandlerFailure {
                cause: FailureCause::Handler,
                why,
            })
        },
        cx,
    )
}

/// A guest that spins for ever.
pub const SPIN: &str = r#"(module
  (func (export "spin") (loop br 0))
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))"#;

// -- WASI -------------------------------------------------------------------------

use wasmbeam_runtime::driver::wasi_io::{self, Pipe, Sink, SinkMode, WasiGrants, WasiShared};

/// A WASI guest: `read` reads stdin into a 64-byte buffer and returns how
/// many bytes it read (minus the errno on failure); `hello` writes
/// "hello\n" to stdout; `outer` calls the host function `env.h`; `add`
/// adds.
pub const WASI: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "h" (func $h (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "hello\n")
  (func (export "read") (result i32) (local $errno i32)
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 64))
    (local.set $errno
      (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (local.get $errno)
      (then (return (i32.sub (i32.const 0) (local.get $errno)))))
    (i32.load (i32.const 8)))
  (func (export "hello") (result i32)
    (i32.store (i32.const 16) (i32.const 200))
    (i32.store (i32.const 20) (i32.const 6))
    (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
  (func (export "outer") (result i32)
    (call $h (i32.const 0)))
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))"#;

pub fn grants() -> WasiGrants {
    WasiGrants {
        args: vec!["guest".into()],
        env: vec![],
        preopens: vec![],
        deterministic: true,
        random_seed: Some(1),
        network: vec![],
        ip_name_lookup: false,
    }
}

/// A store with a WASI context whose stdin is `stdin`, and an instance of
/// [`WASI`] in it. Returns the stdout sink too.
pub fn wasi_fixture(
    engine: &Arc<EngineCore>,
    stdin: Arc<Pipe>,
    stdout_mode: SinkMode,
) -> (Fixture, Instance, Arc<Sink>) {
    let f = Fixture::new(engine);
    let stdout = Sink::new("stdout", stdout_mode);
    let stderr = Sink::new("stderr", SinkMode::Discard);
    let ctx = wasi_io::build_context(&grants(), stdin, &stdout, &stderr).expect("context");
    f.store
        .set_wasi(
            ctx,
            Arc::new(WasiShared {
                stdout: stdout.clone(),
                stderr,
            }),
        )
        .expect("set_wasi");
    let instance = f.instance(
        WASI,
        vec![
            ImportSpec::Wasi,
            ImportSpec::Wasi,
            host(0, "env.h", &[ValType::I32], &[ValType::I32]),
        ],
    );
    (f, instance, stdout)
}
