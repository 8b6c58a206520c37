//! Stores and the execution driver.
//!
//! A store is owned by its resource. Running guest code (a call or an
//! instantiation) moves the store into a future that runs Wasm on a fiber;
//! the BEAM process that started it polls that future from a normal
//! scheduler, one time slice at a time. The epoch ticker makes the guest
//! yield after each slice, the NIF returns `:continue`, and the process
//! yields to the BEAM scheduler before polling again. No thread ever blocks
//! on a guest, and no guest holds a scheduler for more than a slice.

use crate::engine::{ActiveCall, EngineResource};
use crate::error::{panic_message, reply, Kind, WbError, WbResult};
use crate::host::{HostShared, OpResult, Pending};
use crate::module::ModuleResource;
use crate::values::Outs;
use crate::wake::RunWaker;
use crate::wasi::WasiShared;
use once_cell::sync::OnceCell;
use parking_lot::{Mutex, MutexGuard};
use rustler::{Encoder, Env, LocalPid, Monitor, NifMap, ResourceArc, Term};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use wasmtime::{Instance, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

/// Per-store state that Wasmtime hands to the epoch callback.
pub struct StoreData {
    limits: StoreLimits,
    deadline: Option<Instant>,
    pub timed_out: bool,
    /// A call made through a host function's caller ran out of fuel.
    pub nested_out_of_fuel: bool,
    /// The fuel the store had when the last call started.
    fuel_at_start: u64,
    cancel: Arc<AtomicBool>,
    /// The store's host slot, where host functions meet the driver.
    pub host: Arc<HostShared>,
    /// The WASI context, for stores given one (see `crate::wasi`).
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
}

pub type WStore = Store<StoreData>;

/// What a finished run produced.
pub enum Outcome {
    Values(Outs),
    Instance(Instance, ResourceArc<ModuleResource>),
}

pub type RunResult = wasmtime::Result<Outcome>;
pub type RunFuture = Pin<Box<dyn Future<Output = (WStore, RunResult)> + Send>>;

pub struct Running {
    future: RunFuture,
    driver: LocalPid,
    deadline: Option<Instant>,
    active: ActiveCall,
}

pub enum State {
    Idle(WStore),
    Running(Running),
    Poisoned(String),
}

pub struct StoreResource {
    pub id: u64,
    pub engine: ResourceArc<EngineResource>,
    state: Mutex<State>,
    cancel: Arc<AtomicBool>,
    pub host: Arc<HostShared>,
    /// The process this store monitors: the last one whose run went past
    /// its first poll. The monitor is kept between calls, so a process
    /// that drives many calls pays for it once.
    watched: Mutex<Option<(LocalPid, Monitor)>>,
    /// The pid in `watched`, as a raw term (0 for none), so that the common
    /// case, the same driver again, is one atomic load and no lock.
    watched_pid: AtomicU64,
    /// Processes waiting for the run in progress to end (`wait: true`).
    waiters: Mutex<Vec<LocalPid>>,
    has_waiters: AtomicBool,
    /// Wakes the driving process when a guest waiting for I/O can go on.
    run_waker: Arc<RunWaker>,
    waker: Waker,
    /// Stdio of the store's WASI context, if it has one.
    pub wasi: OnceCell<Arc<WasiShared>>,
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// How many polls the cancellation of a dead caller's call may take before
/// the store is declared poisoned.
const CANCEL_POLLS: usize = 2_000;

#[rustler::resource_impl]
impl rustler::Resource for StoreResource {
    const IMPLEMENTS_DOWN: bool = true;

    /// The process driving a call died: make the guest trap at its next
    /// epoch check and run it to completion, so the store stays usable.
    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, monitor: Monitor) {
        {
            let mut watched = self.watched.lock();
            if matches!(&*watched, Some((_, m)) if *m == monitor) {
                *watched = None;
                self.watched_pid.store(0, Ordering::Release);
            }
        }
        let mut state = self.state.lock();
        let running = match std::mem::replace(&mut *state, State::Poisoned(String::new())) {
            State::Running(r) if r.driver == pid => r,
            other => {
                *state = other;
                return;
            }
        };
        cancel_run(self, &mut state, running);
        drop(state);
        self.wake_waiters(env);
    }
}

/// Stops a run: the cancel flag makes the guest trap at its next epoch
/// check (forced at once by advancing the epoch) and makes every pending
/// host call fail; the run is polled to completion so that the store is
/// usable again. A run that cannot be stopped leaves the store poisoned.
pub fn cancel_run(res: &StoreResource, state: &mut State, mut running: Running) -> bool {
    res.cancel.store(true, Ordering::SeqCst);
    res.run_waker.unpark();
    let mut io_waits = 0;
    for attempt in 0..CANCEL_POLLS {
        res.engine.engine.increment_epoch();
        res.run_waker.begin_poll();
        match poll_run(res, &mut running.future) {
            Ok(Poll::Ready((store, _))) => {
                *state = State::Idle(store);
                res.host.reset();
                return true;
            }
            Ok(Poll::Pending) => {
                // A guest parked in host I/O (not in Wasm code, not in an
                // Elixir host call) never reaches an epoch check: the store
                // cannot be brought back, so give up at once.
                let in_io = !res.run_waker.was_woken()
                    && matches!(res.host.take_pending(), Pending::Yielded);
                if in_io {
                    io_waits += 1;
                    if io_waits > 3 {
                        break;
                    }
                } else if attempt > 10 {
                    std::thread::sleep(crate::engine::TICK);
                }
            }
            Err(_) => break,
        }
    }
    *state = State::Poisoned("a call on this store was cancelled and could not be stopped".into());
    false
}

#[derive(NifMap)]
pub struct StoreOptions {
    memory_size: Option<usize>,
    table_elements: Option<usize>,
    instances: Option<usize>,
    tables: Option<usize>,
    memories: Option<usize>,
    fuel: Option<u64>,
}

/// Per-call options, decoded from the Elixir keyword list by `Wasmbeam.Native`.
#[derive(NifMap)]
pub struct CallOptions {
    pub timeout: Option<u64>,
    pub fuel: Option<u64>,
    /// Queue behind a running call instead of failing with `:busy`.
    pub wait: bool,
}

impl StoreResource {
    fn new(engine: ResourceArc<EngineResource>, opts: StoreOptions) -> WbResult<StoreResource> {
        let mut limits = StoreLimitsBuilder::new();
        if let Some(n) = opts.memory_size {
            limits = limits.memory_size(n);
        }
        if let Some(n) = opts.table_elements {
            limits = limits.table_elements(n);
        }
        if let Some(n) = opts.instances {
            limits = limits.instances(n);
        }
        if let Some(n) = opts.tables {
            limits = limits.tables(n);
        }
        if let Some(n) = opts.memories {
            limits = limits.memories(n);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let host = Arc::new(HostShared::new(cancel.clone()));
        let data = StoreData {
            limits: limits.build(),
            host: host.clone(),
            wasi: None,
            deadline: None,
            timed_out: false,
            nested_out_of_fuel: false,
            fuel_at_start: 0,
            cancel: cancel.clone(),
        };
        let mut store = Store::new(&engine.engine, data);
        store.limiter(|d| &mut d.limits);
        if engine.epoch_interruption {
            store.epoch_deadline_callback(|mut ctx| {
                let data = ctx.data_mut();
                if data.cancel.load(Ordering::Relaxed) {
                    return Err(wasmtime::Error::msg("the call was cancelled"));
                }
                if let Some(deadline) = data.deadline {
                    if Instant::now() >= deadline {
                        data.timed_out = true;
                        return Err(wasmtime::Error::msg("the call ran past its timeout"));
                    }
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }
        if engine.consume_fuel {
            store
                .set_fuel(opts.fuel.unwrap_or(u64::MAX))
                .map_err(|e| WbError::new(Kind::Argument, e.to_string()))?;
        } else if opts.fuel.is_some() {
            return Err(fuel_disabled());
        }
        let id = NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed);
        let run_waker = RunWaker::new(id);
        Ok(StoreResource {
            id,
            waker: Waker::from(run_waker.clone()),
            run_waker,
            wasi: OnceCell::new(),
            engine,
            state: Mutex::new(State::Idle(store)),
            host,
            watched: Mutex::new(None),
            watched_pid: AtomicU64::new(0),
            waiters: Mutex::new(Vec::new()),
            has_waiters: AtomicBool::new(false),
            cancel,
        })
    }

    fn queue_waiter(&self, pid: LocalPid) {
        self.waiters.lock().push(pid);
        self.has_waiters.store(true, Ordering::Release);
    }

    /// Tells every waiting process that the store is free; they race for
    /// it, and the losers queue again.
    fn wake_waiters(&self, env: Env) {
        if !self.has_waiters.swap(false, Ordering::AcqRel) {
            return;
        }
        let waiters = std::mem::take(&mut *self.waiters.lock());
        for pid in waiters {
            let _ = env.send(&pid, (crate::atoms::wasmbeam_store_idle(), self.id));
        }
    }

    /// Makes sure the process driving a run is monitored, so that its death
    /// cancels the run.
    fn watch(res: &ResourceArc<StoreResource>, env: Env, driver: LocalPid) {
        let raw = raw_pid(&driver);
        if res.watched_pid.load(Ordering::Acquire) == raw {
            return;
        }
        let mut watched = res.watched.lock();
        if matches!(&*watched, Some((pid, _)) if *pid == driver) {
            res.watched_pid.store(raw, Ordering::Release);
            return;
        }
        if let Some((_, old)) = watched.take() {
            res.demonitor(Some(env), &old);
        }
        *watched = res.monitor(Some(env), &driver).map(|m| (driver, m));
        let now = if watched.is_some() { raw } else { 0 };
        res.watched_pid.store(now, Ordering::Release);
    }

    /// Runs `f` on the store when no call is running on it.
    pub fn with_idle<R>(&self, f: impl FnOnce(&mut WStore) -> WbResult<R>) -> WbResult<R> {
        let mut state = self.state.lock();
        match &mut *state {
            State::Idle(store) => f(store),
            State::Running(_) => Err(busy()),
            State::Poisoned(why) => Err(poisoned(why)),
        }
    }
}

/// A local pid as the raw term the BEAM identifies it by (never 0).
fn raw_pid(pid: &LocalPid) -> u64 {
    const _: () = assert!(std::mem::size_of::<rustler::sys::ErlNifPid>() == 8);
    // SAFETY: `ErlNifPid` is a `repr(C)` struct of one `ERL_NIF_TERM`, a
    // 64-bit integer (checked above).
    unsafe { std::mem::transmute::<rustler::sys::ErlNifPid, u64>(*pid.as_c_arg()) }
}

fn busy() -> WbError {
    WbError::new(
        Kind::Busy,
        "a call is already running on this store (a store runs one call at a time)",
    )
}

fn poisoned(why: &str) -> WbError {
    WbError::new(
        Kind::Poisoned,
        format!("the store is unusable and must be recreated: {why}"),
    )
}

fn fuel_disabled() -> WbError {
    WbError::new(
        Kind::Argument,
        "fuel needs an engine created with consume_fuel: true",
    )
}

/// Polls a run of `res` once. WASI's timers and blocking file operations
/// use Tokio: a store with a WASI context is polled inside Wasmtime's
/// shared Tokio runtime (its I/O completes on that runtime's threads and
/// wakes the driving process through the store's waker).
fn poll_run(
    res: &StoreResource,
    future: &mut RunFuture,
) -> Result<Poll<(WStore, RunResult)>, String> {
    if res.wasi.get().is_some() {
        wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| poll_once(future, &res.waker))
    } else {
        poll_once(future, &res.waker)
    }
}

fn poll_once(future: &mut RunFuture, waker: &Waker) -> Result<Poll<(WStore, RunResult)>, String> {
    let mut cx = Context::from_waker(waker);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        future.as_mut().poll(&mut cx)
    }))
    .map_err(|p| panic_message(&p))
}

/// Starts running guest code on `res`: `make` gets the store and returns the
/// future that owns it. Polls once at once; short calls finish here.
pub fn start<'a>(
    env: Env<'a>,
    res: &ResourceArc<StoreResource>,
    opts: &CallOptions,
    make: impl FnOnce(WStore) -> RunFuture,
) -> Term<'a> {
    if opts.fuel.is_some() && !res.engine.consume_fuel {
        return reply::<()>(env, Err(fuel_disabled()));
    }
    if opts.timeout.is_some() && !res.engine.epoch_interruption {
        return reply::<()>(
            env,
            Err(WbError::new(
                Kind::Argument,
                "timeout needs an engine created with epoch_interruption: true",
            )),
        );
    }
    let mut state = res.state.lock();
    let mut store = match std::mem::replace(&mut *state, State::Poisoned(String::new())) {
        State::Idle(store) => store,
        State::Running(r) => {
            // The driver itself waiting would wait for ever (a handler
            // calling its own instance instead of using its caller).
            let can_wait = opts.wait && r.driver != env.pid();
            *state = State::Running(r);
            if can_wait {
                res.queue_waiter(env.pid());
                return (crate::atoms::wait(), res.id).encode(env);
            }
            return reply::<()>(env, Err(busy()));
        }
        State::Poisoned(why) => {
            let err = poisoned(&why);
            *state = State::Poisoned(why);
            return reply::<()>(env, Err(err));
        }
    };
    let deadline = opts
        .timeout
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let data = store.data_mut();
    data.deadline = deadline;
    data.timed_out = false;
    data.nested_out_of_fuel = false;
    res.cancel.store(false, Ordering::Relaxed);
    res.host.reset();
    if let Some(fuel) = opts.fuel {
        if let Err(e) = store.set_fuel(fuel) {
            *state = State::Idle(store);
            return reply::<()>(env, Err(WbError::new(Kind::Argument, e.to_string())));
        }
    }
    if res.engine.consume_fuel {
        store.data_mut().fuel_at_start = store.get_fuel().unwrap_or(0);
    }
    if res.engine.epoch_interruption {
        store.set_epoch_deadline(1);
    }
    let running = Running {
        active: res.engine.ticker.enter(),
        future: make(store),
        driver: env.pid(),
        deadline,
    };
    drive(env, res, &mut state, running)
}

/// Tells the scheduler how much of the process's time slice a poll used.
///
/// A poll that ran to a tick (a guest slice) has run about as long as a
/// process's whole allowance of 4000 reductions takes: it reports a full
/// time slice, so the process is scheduled out as soon as the NIF returns
/// (the driver does not yield again). This also keeps the BEAM's timers on
/// time: a scheduler reads its clock, and fires due timers such as the end
/// of a `Process.sleep/1`, only after 4000 reductions have run on it. At the
/// 10 % per tick this once reported, a due timer waited ten guest slices
/// before it fired, on top of its place in the run queue (with 20 spinning
/// guests, `Process.sleep(1)` took 3.4-3.9 ms at the median). A poll within
/// one tick reports 1 %: it is measured in ticks, because reading a clock
/// twice per poll would cost more than a short call.
fn report_time(env: Env, whole_slice: bool) {
    rustler::schedule::consume_timeslice(env, if whole_slice { 100 } else { 1 });
}

fn drive<'a>(
    env: Env<'a>,
    res: &ResourceArc<StoreResource>,
    state: &mut State,
    mut running: Running,
) -> Term<'a> {
    let began = res.engine.ticker.ticks();
    res.run_waker.begin_poll();
    let polled = poll_run(res, &mut running.future);
    let crossed_tick = res.engine.ticker.ticks() != began;
    if let Some(wasi) = res.wasi.get() {
        wasi.flush(env);
    }
    match polled {
        Ok(Poll::Pending) => {
            StoreResource::watch(res, env, running.driver);
            let driver = running.driver;
            let deadline = running.deadline;
            let pending = res.host.take_pending();
            // An epoch yield wakes the task during the poll; a guest
            // waiting for I/O does not: park until the I/O wakes us.
            let yielded = matches!(pending, Pending::Yielded);
            let io_wait = yielded && res.run_waker.park(driver);
            if yielded && !io_wait {
                // It used a whole slice: the ticker keeps its fine period
                // until the call ends.
                running.active.mark_long();
            }
            report_time(env, crossed_tick || (yielded && !io_wait));
            *state = State::Running(running);
            match pending {
                Pending::Yielded if io_wait => {
                    let left: Option<u64> = deadline
                        .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64);
                    (crate::atoms::io_wait(), res.id, left).encode(env)
                }
                Pending::Yielded => crate::atoms::r#continue().encode(env),
                Pending::HostCall(request) => crate::host::encode_request(env, request, res),
                Pending::OpDone(result) => crate::host::encode_op_result(env, result, res),
            }
        }
        Ok(Poll::Ready((store, result))) => {
            report_time(env, crossed_tick);
            let timed_out = store.data().timed_out;
            *state = State::Idle(store);
            res.host.reset();
            drop(running);
            res.wake_waiters(env);
            match result {
                Ok(Outcome::Values(outs)) => {
                    reply(env, Ok(crate::values::encode_outs(env, &outs, res)))
                }
                Ok(Outcome::Instance(instance, module)) => reply(
                    env,
                    Ok(crate::instance::new_instance_resource(
                        res.clone(),
                        instance,
                        module,
                    )),
                ),
                Err(err) => reply::<()>(env, Err(classify(err, timed_out))),
            }
        }
        Err(panic) => {
            *state = State::Poisoned(panic.clone());
            res.wake_waiters(env);
            reply::<()>(env, Err(WbError::new(Kind::Panic, panic)))
        }
    }
}

/// Errors that happen before any guest code runs (wrong import types,
/// limits) are link or limit errors; the rest are traps.
fn classify(err: wasmtime::Error, timed_out: bool) -> WbError {
    let ran_code = timed_out
        || err.downcast_ref::<wasmtime::Trap>().is_some()
        || err.downcast_ref::<wasmtime::WasmBacktrace>().is_some()
        || err.downcast_ref::<wasmtime_wasi::I32Exit>().is_some();
    if ran_code {
        return WbError::from_run(err, timed_out);
    }
    let message = crate::error::chain_message(&err);
    WbError::new(setup_error_kind(&message), message)
}

/// The kind of an error raised before any guest code ran: a mismatched
/// import is a link error even when it mentions limits; a resource the
/// store's limits or the system refused is a limit error.
pub fn setup_error_kind(message: &str) -> Kind {
    if message.contains("incompatible import type") || message.contains("unknown import") {
        Kind::Link
    } else if message.contains("limit") || message.contains("allocate") {
        Kind::Limit
    } else {
        Kind::Link
    }
}

#[rustler::nif]
fn store_new(env: Env, engine: ResourceArc<EngineResource>, options: StoreOptions) -> Term {
    reply(
        env,
        crate::error::guard(|| StoreResource::new(engine, options).map(ResourceArc::new)),
    )
}

/// Queues the calling process for the store (see `CallOptions::wait`) when
/// something other than `start` found it busy; answers `{:wait, id}`.
pub fn wait_for<'a>(env: Env<'a>, res: &StoreResource) -> Term<'a> {
    let state = res.state.lock();
    match &*state {
        State::Running(r) if r.driver == env.pid() => return reply::<()>(env, Err(busy())),
        State::Running(_) => res.queue_waiter(env.pid()),
        // It became free meanwhile: wake ourselves to try again at once.
        _ => {
            let _ = env.send(&env.pid(), (crate::atoms::wasmbeam_store_idle(), res.id));
        }
    }
    (crate::atoms::wait(), res.id).encode(env)
}

/// Polls the call running on `store` for one more slice.
#[rustler::nif]
fn store_resume(env: Env, store: ResourceArc<StoreResource>) -> Term {
    match RunningGuard::lock(&store) {
        Ok(mut guard) => drive_running(env, &store, &mut guard),
        Err(e) => reply::<()>(env, Err(e)),
    }
}

/// The state lock of a store with a run in progress, taken out of the state
/// so that it can be polled; put back when dropped.
pub struct RunningGuard<'r> {
    state: MutexGuard<'r, State>,
    running: Option<Running>,
}

impl<'r> RunningGuard<'r> {
    pub fn lock(res: &'r StoreResource) -> WbResult<RunningGuard<'r>> {
        let mut state = res.state.lock();
        match std::mem::replace(&mut *state, State::Poisoned(String::new())) {
            State::Running(running) => Ok(RunningGuard {
                state,
                running: Some(running),
            }),
            other => {
                let err = match &other {
                    State::Poisoned(why) => poisoned(why),
                    _ => WbError::new(Kind::Argument, "no call is running on this store"),
                };
                *state = other;
                Err(err)
            }
        }
    }

    /// Polls once for an operation that completes without running guest
    /// code, and returns its result.
    pub fn poll_for_op(&mut self, env: Env, res: &StoreResource) -> WbResult<OpResult> {
        let running = self.running.as_mut().expect("a running call");
        res.run_waker.begin_poll();
        match poll_run(res, &mut running.future) {
            Ok(Poll::Pending) => match res.host.take_pending() {
                Pending::OpDone(result) => Ok(result),
                _ => Err(WbError::new(
                    Kind::Panic,
                    "a caller lookup did not complete",
                )),
            },
            Ok(Poll::Ready((store, _))) => {
                self.running = None;
                *self.state = State::Idle(store);
                res.host.reset();
                res.wake_waiters(env);
                Err(WbError::new(Kind::Argument, "the call ended"))
            }
            Err(panic) => {
                self.running = None;
                *self.state = State::Poisoned(panic.clone());
                Err(WbError::new(Kind::Panic, panic))
            }
        }
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            *self.state = State::Running(running);
        }
    }
}

impl RunningGuard<'_> {
    /// Cancels the run (see [`cancel_run`]).
    pub fn cancel(&mut self, env: Env, res: &StoreResource) {
        if let Some(running) = self.running.take() {
            cancel_run(res, &mut self.state, running);
            res.wake_waiters(env);
        }
    }
}

/// Polls the run held by `guard` for one slice and encodes what happened.
pub fn drive_running<'a>(
    env: Env<'a>,
    res: &ResourceArc<StoreResource>,
    guard: &mut RunningGuard,
) -> Term<'a> {
    let running = guard.running.take().expect("a running call");
    drive(env, res, &mut guard.state, running)
}

/// The deadline of a call passed while its guest waited for I/O: cancel
/// it. The guest is not running Wasm, so it cannot be made to trap at an
/// epoch check; if it does not finish at once the store is lost.
#[rustler::nif]
fn store_io_timeout(env: Env, store: ResourceArc<StoreResource>) -> Term {
    let mut guard = match RunningGuard::lock(&store) {
        Ok(guard) => guard,
        Err(e) => return reply::<()>(env, Err(e)),
    };
    guard.cancel(env, &store);
    let stopped = matches!(&*guard.state, State::Idle(_));
    drop(guard);
    let message = if stopped {
        "the call ran past its timeout while waiting for I/O"
    } else {
        "the call ran past its timeout while waiting for I/O; the store is lost (recreate the instance)"
    };
    reply::<()>(env, Err(WbError::new(Kind::Timeout, message)))
}

/// Whether the store can still run calls: false once it is poisoned (a
/// panic, or a call that could not be stopped, e.g. one that timed out
/// while its guest was parked in host I/O).
#[rustler::nif]
fn store_usable(store: ResourceArc<StoreResource>) -> bool {
    !matches!(&*store.state.lock(), State::Poisoned(_))
}

#[rustler::nif]
fn store_fuel(env: Env, store: ResourceArc<StoreResource>) -> Term {
    let result = store.with_idle(|s| s.get_fuel().map_err(|_| fuel_disabled()));
    reply(env, result)
}

/// The fuel the last call used: what it started with minus what is left.
#[rustler::nif]
fn store_fuel_consumed(env: Env, store: ResourceArc<StoreResource>) -> Term {
    let result = store.with_idle(|s| {
        let left = s.get_fuel().map_err(|_| fuel_disabled())?;
        Ok(s.data().fuel_at_start.saturating_sub(left))
    });
    reply(env, result)
}

#[rustler::nif]
fn store_set_fuel(env: Env, store: ResourceArc<StoreResource>, fuel: u64) -> Term {
    let result = store.with_idle(|s| s.set_fuel(fuel).map_err(|_| fuel_disabled()));
    reply(env, result.map(|()| crate::atoms::ok()))
}

/// Cancels the call running on `store`. Only the process driving the call
/// may cancel it (an instance process cancelling on behalf of its caller):
/// the guest traps at once and the store is idle again when this returns.
/// Answers `:ok`, or `:idle` when no call was running.
#[rustler::nif]
fn store_cancel(env: Env, store: ResourceArc<StoreResource>) -> Term {
    let Ok(mut guard) = RunningGuard::lock(&store) else {
        return crate::atoms::idle().encode(env);
    };
    if guard
        .running
        .as_ref()
        .is_some_and(|r| r.driver != env.pid())
    {
        return reply::<()>(
            env,
            Err(WbError::new(
                Kind::Argument,
                "only the process driving a call may cancel it",
            )),
        );
    }
    guard.cancel(env, &store);
    rustler::types::atom::ok().encode(env)
}
