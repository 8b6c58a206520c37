//! A store and the run in progress on it: the execution driver.
//!
//! A store is idle, running a call, or poisoned (lost). Running guest code
//! (a call or an instantiation) moves the store into a future that runs
//! Wasm on a fiber; the process that started it polls that future, one
//! time slice at a time. The epoch ticker makes the guest yield after each
//! slice; each poll returns a [`Step`]: done, go on (`Continue`), a host
//! call to run, the result of a caller operation, or a wait for I/O.
//!
//! The state is one atomic word, never a lock held while guest code runs
//! or memory is copied: whoever moves it from `IDLE` or `RUNNING` to `OUT`
//! (one compare-and-swap) owns the store or the run until it moves it on
//! (one store), so a question about the store (is it busy, is it usable,
//! queue me) is answered at once, and a call costs no lock.
//!
//! Stopping a run (cancellation, a dead caller, a deadline passed while
//! the guest waited for I/O) polls it to completion with the cancel flag
//! set. That can take many polls (one per level of nested host calls,
//! with short sleeps while the guest runs to its next epoch check), so it
//! never happens on a BEAM normal scheduler: it runs either in a NIF on a
//! dirty scheduler ([`StoreCore::cancel`]) or on the reaper thread
//! ([`StoreCore::driver_down`], [`StoreCore::answer`] when a handler's
//! answer cannot be delivered).
//!
//! Processes are opaque `u64` tokens here; the layer above says how they
//! are told things ([`Notify`] in a NIF, [`StoreEvents`] from other threads).

use crate::driver::engine::{ActiveCall, EngineCore, TICK};
use crate::driver::error::{msg, panic_message, ran_guest_code, Kind, WbError, WbResult};
use crate::driver::host_slot::{
    Answer, FrameStatus, HostRequest, HostShared, Op, OpResult, Pending, ResultTypes,
};
use crate::driver::store_data::{StoreData, StoreLimitsSpec};
use crate::driver::values::Outs;
use crate::driver::wake::{RunWaker, StoreEvents};
use crate::driver::wasi_io::WasiShared;
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::any::Any;
use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use wasmtime::{Instance, Store, UpdateDeadline};

pub type WStore = Store<StoreData>;

/// What a finished run produced.
pub enum Outcome {
    Values(Outs),
    /// A new instance, with what the starter attached to it (the NIF crate
    /// attaches the module's resource).
    Instance(Instance, Arc<dyn Any + Send + Sync>),
    /// A component call's result (if its type has one), with its type.
    ComponentValue(Option<(wasmtime::component::Val, wasmtime::component::Type)>),
    /// A component call's `list<u8>` or `string` result, as bytes (the
    /// typed path: no value per byte).
    ComponentBytes(Vec<u8>),
    /// A new component instance, with what the starter attached to it.
    ComponentInstance(wasmtime::component::Instance, Arc<dyn Any + Send + Sync>),
}

pub type RunResult = wasmtime::Result<Outcome>;
pub type RunFuture = Pin<Box<dyn Future<Output = (WStore, RunResult)> + Send>>;

/// Per-call options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub timeout: Option<u64>,
    pub fuel: Option<u64>,
    /// Queue behind a running call instead of failing with `:busy`.
    pub wait: bool,
}

impl RunOptions {
    /// Fuel and timeouts need engine settings: the one place that says so.
    pub fn check(&self, engine: &EngineCore) -> WbResult<()> {
        check_fuel(self.fuel, engine)?;
        if self.timeout.is_some() && !engine.epoch_interruption {
            return Err(WbError::new(Kind::Argument, msg::TIMEOUT_DISABLED));
        }
        Ok(())
    }
}

fn check_fuel(fuel: Option<u64>, engine: &EngineCore) -> WbResult<()> {
    if fuel.is_some() && !engine.consume_fuel {
        Err(WbError::fuel_disabled())
    } else {
        Ok(())
    }
}

/// How the process that calls into the driver is told things, with the
/// means only that call has (a NIF's environment).
pub trait Notify {
    /// The store is free again (or lost): `waiters` may try it again.
    fn store_free(&self, waiters: Vec<u64>);
    /// Output that streaming WASI sinks collected during the last poll.
    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>);
}

/// What one poll of a run led to.
pub enum Step {
    /// The run is over; the store is idle again (or poisoned, with the error).
    Done(WbResult<Outcome>),
    /// The guest used its slice: poll again after yielding.
    Continue,
    /// The guest called a host function implemented in Elixir.
    HostCall(HostRequest),
    /// A caller operation completed.
    OpDone(OpResult),
    /// The guest waits for I/O: the poller waits for its wake, at most
    /// `ms_left` (the call's deadline).
    IoWait { ms_left: Option<u64> },
}

pub struct Polled {
    pub step: Step,
    /// The poll ran to a tick: report a whole time slice used.
    pub whole_slice: bool,
}

/// What starting a run led to.
pub enum Begin {
    Polled(Polled),
    /// The store is busy and the caller was queued: it is told when the
    /// store is free.
    Queued,
}

/// What a cancellation found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// No call was running.
    Idle,
    /// The call was stopped; the store is usable.
    Stopped,
}

struct Running {
    future: RunFuture,
    driver: u64,
    deadline: Option<Instant>,
    active: ActiveCall,
}

/// The store is idle: its slot holds the store.
const IDLE: u8 = 0;
/// A run is in progress, between two polls: its slot holds the run.
const RUNNING: u8 = 1;
/// The store or the run is out of its slot: being polled, lent to an
/// operation, or being stopped. Only whoever moved the state here touches
/// the slots until it moves it on.
const OUT: u8 = 2;
/// The store is lost; `StoreCore::poisoned` says why.
const POISONED: u8 = 3;

#[derive(Default)]
struct Slots {
    store: Option<WStore>,
    running: Option<Running>,
}

/// How many polls stopping a run may take before the store is declared lost.
const CANCEL_POLLS: usize = 2_000;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

pub struct StoreCore {
    pub id: u64,
    pub engine: Arc<EngineCore>,
    /// `IDLE`, `RUNNING`, `OUT` or `POISONED`.
    state: AtomicU8,
    /// Touched only by whoever moved `state` from `IDLE` or `RUNNING` to
    /// `OUT` (see [`StoreCore::acquire`]), until it moves it on.
    slots: UnsafeCell<Slots>,
    /// The process driving the run in progress (0: none, or a lent store).
    driver: AtomicU64,
    poisoned: Mutex<Option<Arc<str>>>,
    cancel: Arc<AtomicBool>,
    /// The driver (a pid token) of a run that died while the run was out
    /// of its slot: whoever brings that run back hands it to the reaper.
    orphaned: AtomicU64,
    /// The running call's deadline, in milliseconds after [`clock_base`]
    /// plus one (0: none), for host handlers that run in another process.
    deadline_ms: AtomicU64,
    pub host: Arc<HostShared>,
    /// Processes waiting for the store to be free (`wait: true`).
    waiters: Mutex<Vec<u64>>,
    has_waiters: AtomicBool,
    run_waker: Arc<RunWaker>,
    waker: Waker,
    /// Stdio of the store's WASI context, if it has one.
    pub wasi: OnceCell<Arc<WasiShared>>,
}

// SAFETY: `slots` is only touched by the one thread that moved `state`
// to `OUT` (a compare-and-swap, so there is one), until it stores the next
// state; everything else in `StoreCore` is `Sync` on its own. The store and
// the run in the slots are `Send`.
unsafe impl Sync for StoreCore {}

impl StoreCore {
    pub fn new(
        engine: Arc<EngineCore>,
        limits: &StoreLimitsSpec,
        fuel: Option<u64>,
        events: Arc<dyn StoreEvents>,
    ) -> WbResult<Arc<StoreCore>> {
        check_fuel(fuel, &engine)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let host = Arc::new(HostShared::new(cancel.clone()));
        let data = StoreData::new(limits, cancel.clone(), host.clone());
        let mut store = Store::new(&engine.engine, data);
        store.limiter(|d| &mut d.limiter);
        if engine.epoch_interruption {
            store.epoch_deadline_callback(|mut ctx| {
                let data = ctx.data_mut();
                if data.cancel.load(Ordering::Relaxed) {
                    return Err(wasmtime::Error::msg(msg::CANCELLED));
                }
                if let Some(deadline) = data.deadline {
                    if Instant::now() >= deadline {
                        data.timed_out = true;
                        return Err(wasmtime::Error::msg(msg::TIMEOUT));
                    }
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }
        if engine.consume_fuel {
            store
                .set_fuel(fuel.unwrap_or(u64::MAX))
                .map_err(|e| WbError::new(Kind::Argument, e.to_string()))?;
        }
        let run_waker = RunWaker::new(events);
        Ok(Arc::new(StoreCore {
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            waker: Waker::from(run_waker.clone()),
            run_waker,
            wasi: OnceCell::new(),
            engine,
            state: AtomicU8::new(IDLE),
            slots: UnsafeCell::new(Slots {
                store: Some(store),
                running: None,
            }),
            driver: AtomicU64::new(0),
            poisoned: Mutex::new(None),
            host,
            waiters: Mutex::new(Vec::new()),
            has_waiters: AtomicBool::new(false),
            cancel,
            orphaned: AtomicU64::new(0),
            deadline_ms: AtomicU64::new(0),
        }))
    }

    // -- Questions answered at once --------------------------------------

    /// Whether the store can still run calls (false once it is poisoned).
    pub fn usable(&self) -> bool {
        self.state.load(Ordering::Acquire) != POISONED
    }

    fn poisoned_error(&self) -> WbError {
        let why = self.poisoned.lock().clone();
        WbError::poisoned(why.as_deref().unwrap_or("unknown"))
    }

    /// Moves the state from `from` to `OUT`: on success the caller owns
    /// the slots until it moves the state on.
    #[inline]
    fn acquire(&self, from: u8) -> bool {
        self.state
            .compare_exchange(from, OUT, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// The slots, for whoever acquired them.
    ///
    /// # Safety
    /// Only between a successful [`StoreCore::acquire`] and the store of
    /// the next state, by the thread that acquired.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slots(&self) -> &mut Slots {
        &mut *self.slots.get()
    }

    /// Queues `caller` for the store if it is busy (see [`RunOptions::wait`]);
    /// a store that became free meanwhile answers `Ok(false)`: try again.
    /// The one rule for waiting: a process never waits for a run it drives
    /// itself (a handler calling its own instance instead of its caller
    /// would wait for ever), it gets `:busy`.
    pub fn wait_for(&self, caller: u64) -> WbResult<bool> {
        self.queue_or_refuse(caller, true)
    }

    fn queue_or_refuse(&self, caller: u64, wait: bool) -> WbResult<bool> {
        match self.state.load(Ordering::SeqCst) {
            IDLE => return Ok(false),
            POISONED => return Err(self.poisoned_error()),
            _ => {}
        }
        if !wait || self.driver.load(Ordering::Acquire) == caller {
            return Err(WbError::busy());
        }
        self.waiters.lock().push(caller);
        self.has_waiters.store(true, Ordering::SeqCst);
        // Freed between the first look and the queueing? Whoever freed it
        // may have looked for waiters before this one was there: take it
        // out again and try at once. (Both sides use sequentially
        // consistent operations: one of them sees the other.)
        if matches!(self.state.load(Ordering::SeqCst), IDLE | POISONED) {
            self.waiters.lock().retain(|w| *w != caller);
            return Ok(false);
        }
        Ok(true)
    }

    /// Milliseconds left before the running call's deadline (`None`: no
    /// call, or one without a deadline). A host handler in another process
    /// is given at most this long.
    pub fn time_left_ms(&self) -> Option<u64> {
        match self.deadline_ms.load(Ordering::Relaxed) {
            0 => None,
            at => {
                let now = Instant::now()
                    .saturating_duration_since(clock_base())
                    .as_millis() as u64;
                Some((at - 1).saturating_sub(now))
            }
        }
    }

    /// Takes `caller` out of the queue of processes waiting for the store
    /// (it stopped waiting). Returns whether it was still queued: when it
    /// was not, the store has told it already (its message is on the way).
    pub fn unwait(&self, caller: u64) -> bool {
        let mut waiters = self.waiters.lock();
        let before = waiters.len();
        waiters.retain(|w| *w != caller);
        waiters.len() != before
    }

    #[inline]
    fn take_waiters(&self) -> Vec<u64> {
        if !self.has_waiters.load(Ordering::SeqCst)
            || !self.has_waiters.swap(false, Ordering::SeqCst)
        {
            return Vec::new();
        }
        std::mem::take(&mut *self.waiters.lock())
    }

    /// Takes the idle store out of its slot.
    #[inline]
    fn take_idle(&self) -> WbResult<WStore> {
        if !self.acquire(IDLE) {
            return Err(match self.state.load(Ordering::SeqCst) {
                POISONED => self.poisoned_error(),
                _ => WbError::busy(),
            });
        }
        // SAFETY: acquired above; an idle state always holds the store.
        Ok(unsafe { self.slots() }.store.take().expect("an idle store"))
    }

    // -- Work on the idle store ------------------------------------------

    /// Runs `f` on the store when no call is running on it. The store is
    /// out of its slot meanwhile: other callers get `:busy` (or queue).
    /// Processes that queued meanwhile are told through the store's
    /// events.
    #[inline]
    pub fn with_idle<R>(&self, f: impl FnOnce(&mut WStore) -> WbResult<R>) -> WbResult<R> {
        self.with_idle_notify(&OffBeam(&**self.run_waker.events()), f)
    }

    /// [`StoreCore::with_idle`], telling waiters through `cx`: for long
    /// operations (copies of many megabytes) made in a NIF.
    #[inline]
    pub fn with_idle_notify<R>(
        &self,
        cx: &dyn Notify,
        f: impl FnOnce(&mut WStore) -> WbResult<R>,
    ) -> WbResult<R> {
        let mut store = self.take_idle()?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut store))) {
            Ok(result) => {
                self.finish(store, cx);
                result
            }
            Err(panic) => {
                let why = panic_message(&panic);
                self.poison(&why, cx);
                Err(WbError::new(Kind::Panic, why))
            }
        }
    }

    // -- Running guest code ----------------------------------------------

    /// Starts running guest code for `caller`: `make` gets the store and
    /// returns the future that owns it (or gives the store back with an
    /// error). Polls once at once; short calls finish here.
    pub fn start(
        self: &Arc<Self>,
        caller: u64,
        opts: &RunOptions,
        cx: &dyn Notify,
        make: impl FnOnce(WStore) -> Result<RunFuture, (WStore, WbError)>,
    ) -> WbResult<Begin> {
        opts.check(&self.engine)?;
        let mut store = loop {
            match self.take_idle() {
                Ok(store) => break store,
                Err(e) if e.kind == Kind::Poisoned => return Err(e),
                Err(_) => match self.queue_or_refuse(caller, opts.wait)? {
                    true => return Ok(Begin::Queued),
                    false => continue,
                },
            }
        };
        self.driver.store(caller, Ordering::Release);
        let deadline = opts
            .timeout
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        self.deadline_ms.store(
            deadline.map_or(0, |d| {
                d.saturating_duration_since(clock_base()).as_millis() as u64 + 1
            }),
            Ordering::Relaxed,
        );
        let data = store.data_mut();
        data.deadline = deadline;
        data.timed_out = false;
        data.nested_out_of_fuel = false;
        data.limiter.take_refusal();
        self.cancel.store(false, Ordering::Relaxed);
        self.orphaned.store(0, Ordering::Relaxed);
        if let Some(fuel) = opts.fuel {
            if let Err(e) = store.set_fuel(fuel) {
                self.finish(store, cx);
                return Err(WbError::new(Kind::Argument, e.to_string()));
            }
        }
        if self.engine.consume_fuel {
            store.data_mut().fuel_at_start = store.get_fuel().unwrap_or(0);
        }
        if self.engine.epoch_interruption {
            store.set_epoch_deadline(1);
        }
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(store)));
        let future = match made {
            Ok(Ok(future)) => future,
            Ok(Err((store, e))) => {
                self.finish(store, cx);
                return Err(e);
            }
            Err(panic) => {
                // The store went into `make` and is lost with it.
                let why = panic_message(&panic);
                self.poison(&why, cx);
                return Err(WbError::new(Kind::Panic, why));
            }
        };
        let running = Running {
            active: self.engine.ticker.enter(),
            future,
            driver: caller,
            deadline,
        };
        Ok(Begin::Polled(self.drive(running, caller, cx)))
    }

    /// Takes the run out of its slot to poll it.
    fn take_running(&self) -> WbResult<Running> {
        if self.acquire(RUNNING) {
            // SAFETY: acquired above; a running state always holds the run.
            return Ok(unsafe { self.slots() }.running.take().expect("a run"));
        }
        Err(match self.state.load(Ordering::SeqCst) {
            OUT => WbError::new(
                Kind::Busy,
                "the call on this store is being polled or stopped by another process",
            ),
            IDLE => WbError::new(Kind::Argument, "no call is running on this store"),
            _ => self.poisoned_error(),
        })
    }

    /// Polls the run on this store for one more slice, by `poller`.
    pub fn resume(self: &Arc<Self>, poller: u64, cx: &dyn Notify) -> WbResult<Polled> {
        let running = self.take_running()?;
        Ok(self.drive(running, poller, cx))
    }

    /// Answers the innermost pending host call `id` and polls on. An answer
    /// that cannot be delivered (the handler answered while a call it
    /// made through its caller is still running) stops the whole call: the
    /// run is handed to the reaper and the error says why.
    pub fn answer(
        self: &Arc<Self>,
        poller: u64,
        id: u64,
        decode: impl FnOnce(&ResultTypes) -> Answer,
        cx: &dyn Notify,
    ) -> WbResult<Polled> {
        self.answer_unless(poller, id, |results| Some(decode(results)), cx)?
            .ok_or_else(|| WbError::new(Kind::Panic, "an answer that cannot decline declined"))
    }

    /// Like [`answer`](Self::answer), but `decode` may decline the answer
    /// (`None`: too large to decode here, say): then nothing is delivered,
    /// nothing runs, and this returns `Ok(None)`; the caller answers again.
    pub fn answer_unless(
        self: &Arc<Self>,
        poller: u64,
        id: u64,
        decode: impl FnOnce(&ResultTypes) -> Option<Answer>,
        cx: &dyn Notify,
    ) -> WbResult<Option<Polled>> {
        match self.host.answer_unless(id, decode) {
            FrameStatus::Delivered => self.resume(poller, cx).map(Some),
            FrameStatus::Declined => Ok(None),
            FrameStatus::Blocked(name, answer) => {
                let why = match answer {
                    Answer::Failed(f) if f.cause == crate::driver::host_slot::FailureCause::Handler => f.why,
                    _ => "the handler answered while a call it made through its caller was still running".to_string(),
                };
                if let Ok(running) = self.take_running() {
                    self.reap(running);
                }
                Err(WbError::new(
                    Kind::Trap,
                    format!("host function {name}: {why} ({})", msg::CANCELLED),
                ))
            }
            FrameStatus::Gone => Err(WbError::new(Kind::Argument, msg::CALLER_GONE)),
        }
    }

    /// Hands `op` to the innermost pending host call `id` and polls on.
    pub fn caller_op(
        self: &Arc<Self>,
        poller: u64,
        id: u64,
        op: Op,
        cx: &dyn Notify,
    ) -> WbResult<Polled> {
        self.host.check_frame(id)?;
        self.host.deliver_op(op);
        self.resume(poller, cx)
    }

    /// Runs an operation that completes without running guest code (a
    /// lookup through a caller) and returns its result directly.
    pub fn caller_lookup(
        self: &Arc<Self>,
        poller: u64,
        id: u64,
        op: Op,
        cx: &dyn Notify,
    ) -> WbResult<OpResult> {
        match self.caller_op(poller, id, op, cx)?.step {
            Step::OpDone(result) => Ok(result),
            Step::Done(Err(e)) => Err(e),
            Step::Done(Ok(_)) => Err(WbError::new(Kind::Argument, "the call ended")),
            _ => Err(WbError::new(
                Kind::Panic,
                "a caller lookup did not complete",
            )),
        }
    }

    /// Polls `running` once (the state says `Out`) and puts everything
    /// where it belongs afterwards.
    fn drive(self: &Arc<Self>, mut running: Running, poller: u64, cx: &dyn Notify) -> Polled {
        let began = self.engine.ticker.ticks();
        self.run_waker.begin_poll();
        let polled = self.poll(&mut running.future);
        let crossed_tick = self.engine.ticker.ticks() != began;
        self.flush(cx);
        match polled {
            Ok(Poll::Pending) => {
                let pending = self.host.take_pending();
                // An epoch yield wakes the task during the poll; a guest
                // waiting for I/O does not: park until the I/O wakes the
                // process that polled.
                let yielded = matches!(pending, Pending::Yielded);
                let io_wait = yielded && self.run_waker.park(poller);
                if yielded && !io_wait {
                    // A whole slice used: the ticker keeps its fine period
                    // until the call ends.
                    running.active.mark_long();
                }
                let deadline = running.deadline;
                self.put_back(running);
                let step = match pending {
                    Pending::Yielded if io_wait => Step::IoWait {
                        ms_left: deadline.map(|d| {
                            d.saturating_duration_since(Instant::now()).as_millis() as u64
                        }),
                    },
                    Pending::Yielded => Step::Continue,
                    Pending::HostCall(request) => Step::HostCall(request),
                    Pending::OpDone(result) => Step::OpDone(result),
                };
                Polled {
                    step,
                    whole_slice: crossed_tick || (yielded && !io_wait),
                }
            }
            Ok(Poll::Ready((mut store, result))) => {
                drop(running);
                let result = self.classify(&mut store, result);
                self.finish(store, cx);
                Polled {
                    step: Step::Done(result),
                    whole_slice: crossed_tick,
                }
            }
            Err(panic) => {
                drop(running);
                self.poison(&panic, cx);
                Polled {
                    step: Step::Done(Err(WbError::new(Kind::Panic, panic))),
                    whole_slice: crossed_tick,
                }
            }
        }
    }

    /// Returns a run that is still going to its slot, unless its driver
    /// died meanwhile: then it goes to the reaper.
    #[inline]
    fn put_back(self: &Arc<Self>, running: Running) {
        let driver = running.driver;
        if self.orphaned.load(Ordering::SeqCst) == driver {
            self.reap(running);
            return;
        }
        // SAFETY: the state is `OUT`, acquired by this poller.
        unsafe { self.slots() }.running = Some(running);
        self.state.store(RUNNING, Ordering::SeqCst);
        // `driver_down` may have marked the run between the load and the
        // store, and found it out of its slot.
        if self.orphaned.load(Ordering::SeqCst) == driver {
            self.reap_if_orphaned();
        }
    }

    /// The end of every run and every lent store: idle again, the host
    /// slot cleared, waiters told.
    #[inline]
    fn finish(&self, store: WStore, cx: &dyn Notify) {
        self.host.reset();
        self.driver.store(0, Ordering::Release);
        // SAFETY: the state is `OUT`, acquired by the caller.
        unsafe { self.slots() }.store = Some(store);
        self.state.store(IDLE, Ordering::SeqCst);
        let waiters = self.take_waiters();
        if !waiters.is_empty() {
            cx.store_free(waiters);
        }
    }

    /// The end of a run that lost the store: poisoned, waiters told (they
    /// find out when they try again).
    fn poison(&self, why: &str, cx: &dyn Notify) {
        self.host.reset();
        *self.poisoned.lock() = Some(Arc::from(why));
        self.state.store(POISONED, Ordering::SeqCst);
        let waiters = self.take_waiters();
        if !waiters.is_empty() {
            cx.store_free(waiters);
        }
    }

    /// Errors that happen before any guest code runs (wrong imports,
    /// limits) are link or limit errors; the rest are traps.
    fn classify(&self, store: &mut WStore, result: RunResult) -> WbResult<Outcome> {
        let timed_out = store.data().timed_out;
        result.map_err(|err| {
            if timed_out || ran_guest_code(&err) {
                WbError::from_run(err, timed_out)
            } else {
                let kind = store.data_mut().setup_error(&err);
                WbError::new(kind, crate::driver::error::chain_message(&err))
            }
        })
    }

    /// Streams what the guest wrote during the last poll.
    #[inline]
    fn flush(&self, cx: &dyn Notify) {
        if let Some(wasi) = self.wasi.get() {
            if wasi.streams() {
                let (out, err) = wasi.take_streamed();
                if !out.is_empty() || !err.is_empty() {
                    cx.streamed(out, err);
                }
            }
        }
    }

    /// Polls a run once. WASI's timers and blocking file operations use
    /// Tokio: a store with a WASI context is polled inside Wasmtime's
    /// shared Tokio runtime (its I/O completes on that runtime's threads
    /// and wakes the poller through the store's waker).
    #[inline]
    fn poll(&self, future: &mut RunFuture) -> Result<Poll<(WStore, RunResult)>, String> {
        let mut once = || {
            let mut cx = Context::from_waker(&self.waker);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                future.as_mut().poll(&mut cx)
            }))
            .map_err(|p| panic_message(&p))
        };
        if self.wasi.get().is_some() {
            wasmtime_wasi::runtime::with_ambient_tokio_runtime(once)
        } else {
            once()
        }
    }

    // -- Stopping a run ----------------------------------------------------

    /// Stops the call running on this store, on behalf of its driver, and
    /// waits for it to stop: the guest traps at its
    /// next epoch check, pending host calls fail. Polls many times and
    /// sleeps between polls: call it only from a dirty scheduler or a
    /// thread of one's own. A call that cannot be stopped (its guest is
    /// parked in host I/O) loses the store: `Err(:poisoned)`.
    /// `requester: None` stops it whoever drives it (a deadline passed
    /// while the guest waited for I/O, seen by whichever process polled).
    pub fn cancel(&self, requester: Option<u64>, cx: &dyn Notify) -> WbResult<Cancelled> {
        match self.state.load(Ordering::SeqCst) {
            IDLE => return Ok(Cancelled::Idle),
            POISONED => return Err(self.poisoned_error()),
            _ => {}
        }
        if requester.is_some_and(|p| p != self.driver.load(Ordering::Acquire)) {
            return Err(WbError::new(
                Kind::Argument,
                "only the process driving a call may cancel it",
            ));
        }
        let running = self.take_running()?;
        self.stop(running, cx).map(|()| Cancelled::Stopped)
    }

    /// The process driving the run died (a monitor fired; this runs on a
    /// normal scheduler): the run is stopped on the reaper thread. A run
    /// out being polled by another process (a nested call made by a
    /// handler process) is marked, and reaped when it comes back.
    pub fn driver_down(self: &Arc<Self>, pid: u64) {
        if pid == 0 || self.driver.load(Ordering::Acquire) != pid {
            return;
        }
        // Marked first: a poller that brings the run back reaps it.
        self.orphaned.store(pid, Ordering::SeqCst);
        self.reap_if_orphaned();
    }

    /// Reaps the run in its slot if its driver is marked dead.
    fn reap_if_orphaned(self: &Arc<Self>) {
        let Ok(running) = self.take_running() else {
            return;
        };
        if self.orphaned.load(Ordering::SeqCst) == running.driver {
            self.reap(running);
        } else {
            // Another run (its driver is alive) started meanwhile.
            // SAFETY: acquired by `take_running`.
            unsafe { self.slots() }.running = Some(running);
            self.state.store(RUNNING, Ordering::SeqCst);
        }
    }

    /// Hands a run (taken out of its slot) to the reaper thread, which
    /// stops it and tells the waiters through the store's events.
    fn reap(self: &Arc<Self>, running: Running) {
        self.cancel.store(true, Ordering::SeqCst);
        self.run_waker.unpark();
        reaper().submit(self.clone(), running);
    }

    /// Polls a run to completion with the cancel flag set; the store is
    /// idle again, or poisoned when the run could not be stopped.
    fn stop(&self, mut running: Running, cx: &dyn Notify) -> WbResult<()> {
        self.cancel.store(true, Ordering::SeqCst);
        self.run_waker.unpark();
        let mut io_waits = 0;
        for attempt in 0..CANCEL_POLLS {
            self.engine.engine.increment_epoch();
            self.run_waker.begin_poll();
            let polled = self.poll(&mut running.future);
            self.flush(cx);
            match polled {
                Ok(Poll::Ready((store, _))) => {
                    drop(running);
                    self.finish(store, cx);
                    return Ok(());
                }
                Ok(Poll::Pending) => {
                    // A guest parked in host I/O (not in Wasm code, not in
                    // an Elixir host call) never reaches an epoch check:
                    // the store cannot be brought back, so give up soon.
                    let in_io = !self.run_waker.was_woken()
                        && matches!(self.host.take_pending(), Pending::Yielded);
                    if in_io {
                        io_waits += 1;
                        if io_waits > 3 {
                            break;
                        }
                    } else if attempt > 10 {
                        std::thread::sleep(TICK);
                    }
                }
                Err(_) => break,
            }
        }
        drop(running);
        self.poison(msg::NOT_STOPPABLE, cx);
        Err(WbError::poisoned(msg::NOT_STOPPABLE))
    }

    /// Gives the store a WASI context (at most one).
    pub fn set_wasi(
        &self,
        ctx: wasmtime_wasi::p1::WasiP1Ctx,
        shared: Arc<WasiShared>,
    ) -> WbResult<()> {
        self.with_idle(|store| {
            if store.data().wasi.is_some() {
                return Err(WbError::new(
                    Kind::Argument,
                    "the store already has a WASI context",
                ));
            }
            store.data_mut().wasi = Some(ctx);
            let _ = self.wasi.set(shared);
            Ok(())
        })
    }
}

// -- The reaper --------------------------------------------------------------

/// The thread that stops runs no BEAM process can wait for: the run of a
/// process that died, a run whose handler answered out of turn. One for the
/// VM; it sleeps while there is nothing to stop.
struct Reaper {
    jobs: Mutex<std::sync::mpsc::Sender<(Arc<StoreCore>, Running)>>,
}

impl Reaper {
    fn submit(&self, store: Arc<StoreCore>, running: Running) {
        let _ = self.jobs.lock().send((store, running));
    }
}

/// Tells a store's waiters through its events: the reaper runs on a
/// thread of its own, where a NIF environment cannot be had.
struct OffBeam<'a>(&'a dyn StoreEvents);

impl Notify for OffBeam<'_> {
    fn store_free(&self, waiters: Vec<u64>) {
        self.0.store_free(waiters);
    }
    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>) {
        self.0.streamed(stdout, stderr);
    }
}

/// The instant deadlines are counted from (see `StoreCore::time_left_ms`).
fn clock_base() -> Instant {
    static BASE: once_cell::sync::Lazy<Instant> = once_cell::sync::Lazy::new(Instant::now);
    *BASE
}

fn reaper() -> &'static Reaper {
    static REAPER: once_cell::sync::Lazy<Reaper> = once_cell::sync::Lazy::new(|| {
        let (tx, rx) = std::sync::mpsc::channel::<(Arc<StoreCore>, Running)>();
        std::thread::Builder::new()
            .name("wasmbeam-reaper".into())
            .spawn(move || {
                for (store, running) in rx {
                    let events = store.run_waker.events().clone();
                    let _ = store.stop(running, &OffBeam(&*events));
                }
            })
            .expect("spawn the reaper thread");
        Reaper {
            jobs: Mutex::new(tx),
        }
    });
    &REAPER
}
