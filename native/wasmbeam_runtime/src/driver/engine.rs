//! Engines as the driver sees them, and the epoch ticker that time-slices
//! every store: one thread for all engines.

use once_cell::sync::OnceCell;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use wasmtime::Engine;

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

/// Ticks (of [`TICK`]) without any running call before the ticker lets an
/// engine go (and parks, when it was the last).
const IDLE_TICKS_BEFORE_PARK: u64 = 200;

/// A Wasmtime engine with the settings the driver must know, and its
/// ticker. Shared by the engine's resource and every store made from it;
/// the ticker stops when the last of them is gone.
pub struct EngineCore {
    pub engine: Engine,
    pub consume_fuel: bool,
    pub epoch_interruption: bool,
    pub ticker: Ticker,
    /// Wasmtime's WASI preview 1 functions, linked once per engine
    /// (made by the domain layer's import resolver).
    pub wasi_linker:
        once_cell::sync::OnceCell<wasmtime::Linker<crate::driver::store_data::StoreData>>,
    /// Wasmtime's WASI preview 2 interfaces for components, linked once
    /// per engine and cloned for each link that asks for WASI.
    pub wasi_component_linker: once_cell::sync::OnceCell<
        wasmtime::component::Linker<crate::driver::store_data::StoreData>,
    >,
}

impl EngineCore {
    pub fn new(
        engine: Engine,
        consume_fuel: bool,
        epoch_interruption: bool,
        realtime: bool,
    ) -> EngineCore {
        let ticker = Ticker::start(engine.clone(), realtime);
        EngineCore {
            engine,
            consume_fuel,
            epoch_interruption,
            ticker,
            wasi_linker: once_cell::sync::OnceCell::new(),
            wasi_component_linker: once_cell::sync::OnceCell::new(),
        }
    }

    /// Whether `other` is this engine (modules and stores of one engine
    /// only work together).
    pub fn same(&self, other: &wasmtime::Engine) -> bool {
        Engine::same(&self.engine, other)
    }
}

/// An engine's handle on the epoch ticker: one thread for every engine of
/// the VM (two when some engines ask for real-time scheduling and others
/// do not), that advances the epoch of each engine with a running call
/// every [`TICK`] and parks when no engine has had one for a while. It
/// never runs guest code, so busy guests cannot starve it. An engine per
/// tenant costs no thread: 5,000 engines once held 5,020 threads when
/// each had a ticker of its own.
pub struct Ticker {
    entry: Arc<TickerEntry>,
    hub: &'static Hub,
    /// Whether the engine's ticks come from a thread that got real-time
    /// scheduling (see [`ask_realtime`]).
    pub realtime: bool,
}

/// One engine as the ticker thread sees it.
struct TickerEntry {
    engine: Engine,
    /// Calls of this engine running now.
    active: AtomicUsize,
    /// Running calls that have used at least one whole slice.
    long: AtomicUsize,
    /// Whether the ticker thread has this engine on its list (or is
    /// about to take it from `HubState::joining`). Set by the first call
    /// after the engine was idle, cleared by the thread when it lets the
    /// engine go: a call reads it without a lock.
    listed: AtomicBool,
}

/// A ticker thread and what it shares with the engines it serves.
struct Hub {
    state: Mutex<HubState>,
    wake: Condvar,
    /// Ticks since the thread started: a clock with the resolution of a
    /// slice that costs one atomic load to read.
    ticks: AtomicU64,
    realtime: bool,
}

struct HubState {
    /// Engines that had a call since the thread last looked.
    joining: Vec<Weak<TickerEntry>>,
    parked: bool,
}

/// Held while a call runs; dropping it tells the ticker the call ended.
pub struct ActiveCall {
    entry: Arc<TickerEntry>,
    long: bool,
}

impl ActiveCall {
    /// The call has used a whole slice: tick at the fine period until it
    /// ends.
    pub fn mark_long(&mut self) {
        if !self.long {
            self.long = true;
            self.entry.long.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        if self.long {
            self.entry.long.fetch_sub(1, Ordering::SeqCst);
        }
        self.entry.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The ticker thread serving engines that asked for real-time scheduling
/// (`realtime`) or not; started on first use.
fn hub(realtime: bool) -> &'static Hub {
    static REALTIME: OnceCell<&'static Hub> = OnceCell::new();
    static ORDINARY: OnceCell<&'static Hub> = OnceCell::new();
    let cell = if realtime { &REALTIME } else { &ORDINARY };
    cell.get_or_init(|| Hub::start(realtime))
}

impl Hub {
    fn start(realtime: bool) -> &'static Hub {
        let (hub_tx, hub_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wasmbeam-epoch".into())
            .spawn(move || {
                let hub: &'static Hub = hub_rx.recv().expect("the hub");
                run_ticker(hub)
            })
            .expect("spawn the epoch ticker thread");
        let hub: &'static Hub = Box::leak(Box::new(Hub {
            state: Mutex::new(HubState {
                joining: Vec::new(),
                parked: false,
            }),
            wake: Condvar::new(),
            ticks: AtomicU64::new(0),
            realtime: realtime && ask_realtime(&thread),
        }));
        hub_tx
            .send(hub)
            .expect("the ticker thread waits for its hub");
        hub
    }

    /// Puts `entry` on the thread's list, unless it is there already.
    fn join(&self, entry: &Arc<TickerEntry>) {
        let mut state = self.state.lock();
        // Checked again under the lock: the thread lets engines go under it.
        if entry.listed.load(Ordering::SeqCst) {
            return;
        }
        entry.listed.store(true, Ordering::SeqCst);
        state.joining.push(Arc::downgrade(entry));
        if state.parked {
            self.wake.notify_one();
        }
    }
}

impl Ticker {
    fn start(engine: Engine, realtime: bool) -> Ticker {
        let hub = hub(realtime);
        Ticker {
            entry: Arc::new(TickerEntry {
                engine,
                active: AtomicUsize::new(0),
                long: AtomicUsize::new(0),
                listed: AtomicBool::new(false),
            }),
            hub,
            realtime: hub.realtime,
        }
    }

    /// Marks a call as running until the returned guard is dropped.
    #[inline]
    pub fn enter(&self) -> ActiveCall {
        self.entry.active.fetch_add(1, Ordering::SeqCst);
        if !self.entry.listed.load(Ordering::SeqCst) {
            self.hub.join(&self.entry);
        }
        ActiveCall {
            entry: self.entry.clone(),
            long: false,
        }
    }

    /// The time so far in ticks of [`TICK`] (see [`Hub::ticks`]).
    #[inline]
    pub fn ticks(&self) -> u64 {
        self.hub.ticks.load(Ordering::Relaxed)
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

/// An engine on the ticker thread's list, with the ticks it has been idle.
struct Listed {
    entry: Weak<TickerEntry>,
    idle_ticks: u64,
}

fn run_ticker(hub: &'static Hub) {
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
    let mut listed: Vec<Listed> = Vec::new();
    let mut any_long = false;
    loop {
        {
            let mut state = hub.state.lock();
            listed.extend(state.joining.drain(..).map(|entry| Listed {
                entry,
                idle_ticks: 0,
            }));
            if listed.is_empty() {
                state.parked = true;
                while state.joining.is_empty() {
                    hub.wake.wait(&mut state);
                }
                state.parked = false;
                continue;
            }
        }
        let (period, ticks) = if any_long {
            (TICK, 1)
        } else {
            (SHORT_CALLS_TICK, short_ticks)
        };
        std::thread::sleep(period);
        hub.ticks.fetch_add(ticks, Ordering::Relaxed);
        any_long = false;
        let mut some_idle = false;
        for engine in &mut listed {
            let Some(entry) = engine.entry.upgrade() else {
                engine.idle_ticks = IDLE_TICKS_BEFORE_PARK;
                some_idle = true;
                continue;
            };
            entry.engine.increment_epoch();
            any_long |= entry.long.load(Ordering::SeqCst) > 0;
            if entry.active.load(Ordering::SeqCst) > 0 {
                engine.idle_ticks = 0;
            } else {
                engine.idle_ticks += ticks;
                some_idle |= engine.idle_ticks >= IDLE_TICKS_BEFORE_PARK;
            }
        }
        if some_idle {
            let _state = hub.state.lock();
            listed.retain_mut(keep_listed);
        }
    }
}

/// Whether an engine stays on the ticker's list: it does while it has run
/// a call lately. Called with the hub's lock held: a call that starts
/// meanwhile either sees the engine still listed, or finds it let go and
/// (taking the lock) lists it again.
fn keep_listed(engine: &mut Listed) -> bool {
    if engine.idle_ticks < IDLE_TICKS_BEFORE_PARK {
        return true;
    }
    let Some(entry) = engine.entry.upgrade() else {
        return false;
    };
    entry.listed.store(false, Ordering::SeqCst);
    if entry.active.load(Ordering::SeqCst) > 0 {
        // A call started between the count and the lock: keep it.
        entry.listed.store(true, Ordering::SeqCst);
        engine.idle_ticks = 0;
        return true;
    }
    false
}
