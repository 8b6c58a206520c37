//! Engines as the driver sees them, and the one epoch ticker per engine
//! that time-slices every store of that engine.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Ticks (of [`TICK`]) without any running call before the ticker parks
/// itself.
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
        }
    }

    /// Whether `other` is this engine (modules and stores of one engine
    /// only work together).
    pub fn same(&self, other: &wasmtime::Engine) -> bool {
        Engine::same(&self.engine, other)
    }
}

impl Drop for EngineCore {
    fn drop(&mut self) {
        self.ticker.stop();
    }
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
