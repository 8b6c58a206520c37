//! Waking a process whose guest waits for I/O.
//!
//! A run is polled by the process that drives it. When a poll returns
//! `Pending` because the guest is waiting for I/O (a WASI read from a pipe,
//! a file operation on Wasmtime's blocking pool, a timer), nobody would poll
//! it again: the process parks in `receive` and this waker sends it
//! `{:wasmbeam_wake, store_id}` when the I/O completes.
//!
//! The waker also tells the driver what kind of `Pending` it saw: an epoch
//! yield wakes the task during the poll itself (the guest is ready to go
//! on: `:continue`), an I/O wait does not (park).

use parking_lot::Mutex;
use rustler::{Encoder, LocalPid, OwnedEnv};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::task::Wake;

const POLLING: u8 = 0;
const WOKEN: u8 = 1;
const PARKED: u8 = 2;

pub struct RunWaker {
    state: AtomicU8,
    driver: Mutex<Option<LocalPid>>,
    store_id: u64,
}

impl RunWaker {
    pub fn new(store_id: u64) -> Arc<RunWaker> {
        Arc::new(RunWaker {
            state: AtomicU8::new(POLLING),
            driver: Mutex::new(None),
            store_id,
        })
    }

    /// Called before every poll. A plain store (not a locked instruction,
    /// which costs as much as a short poll): a wake that must not be lost
    /// comes from a waker registered during the poll, so it happens after
    /// this store, and its swap sees it.
    pub fn begin_poll(&self) {
        self.state.store(POLLING, Ordering::Release);
    }

    /// After a poll that returned `Pending` with nothing for the driver to
    /// do: parks, so that the next wake sends `driver` a message. Returns
    /// false when a wake came during the poll (the run can go on at once).
    pub fn park(&self, driver: LocalPid) -> bool {
        *self.driver.lock() = Some(driver);
        self.state
            .compare_exchange(POLLING, PARKED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Whether a wake came since the last `begin_poll`.
    pub fn was_woken(&self) -> bool {
        self.state.load(Ordering::SeqCst) == WOKEN
    }

    /// Stops a parked run from sending its wake message (it is being
    /// cancelled by its driver).
    pub fn unpark(&self) {
        self.state.store(POLLING, Ordering::SeqCst);
    }
}

impl Wake for RunWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.swap(WOKEN, Ordering::SeqCst) == PARKED {
            if let Some(pid) = *self.driver.lock() {
                notify(pid, self.store_id);
            }
        }
    }
}

/// Sends the wake message. `enif_send` without a process environment only
/// works on threads the BEAM did not create; a wake on a scheduler thread
/// (an Elixir process writing to a WASI pipe) goes through a helper thread.
fn notify(pid: LocalPid, store_id: u64) {
    if rustler::thread::is_scheduler_thread() {
        let _ = NOTIFIER.lock().send((pid, store_id));
    } else {
        send_wake(pid, store_id);
    }
}

fn send_wake(pid: LocalPid, store_id: u64) {
    let mut env = OwnedEnv::new();
    let _ = env.send_and_clear(&pid, |env| {
        (crate::atoms::wasmbeam_wake(), store_id).encode(env)
    });
}

static NOTIFIER: once_cell::sync::Lazy<Mutex<Sender<(LocalPid, u64)>>> =
    once_cell::sync::Lazy::new(|| {
        let (tx, rx) = channel::<(LocalPid, u64)>();
        std::thread::Builder::new()
            .name("wasmbeam-wake".into())
            .spawn(move || {
                for (pid, store_id) in rx {
                    send_wake(pid, store_id);
                }
            })
            .expect("spawn the wake notifier thread");
        Mutex::new(tx)
    });
