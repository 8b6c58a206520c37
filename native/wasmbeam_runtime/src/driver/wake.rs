//! Waking whoever waits on a store: the process whose guest waits for I/O,
//! and processes queued for a busy store.
//!
//! A run is polled by a process. When a poll returns `Pending` because the
//! guest waits for I/O (a WASI read from a pipe, a file operation on
//! Wasmtime's blocking pool, a timer), nobody would poll it again: the
//! poller parks and [`RunWaker`] tells it, through the store's
//! [`StoreEvents`], when the I/O completes. The waker also tells the driver
//! what kind of `Pending` it saw: an epoch yield wakes the task during the
//! poll itself (the guest can go on at once), an I/O wait does not.
//!
//! Who is woken, and how, belongs to the layer above: here a process is an
//! opaque `u64` token (the NIF crate uses the raw pid term).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Wake;

/// How a store reaches the processes that wait on it.
pub trait StoreEvents: Send + Sync {
    /// The guest parked on I/O by `poller`'s poll can go on. Called from
    /// any thread, including BEAM schedulers.
    fn io_ready(&self, poller: u64);
    /// A run finished away from any BEAM process (a cancelled run that
    /// the reaper thread completed): `waiters` may try the store again.
    /// Called only from threads the BEAM does not manage.
    fn store_free(&self, waiters: Vec<u64>);
    /// Output a streaming WASI sink collected during a poll made away from
    /// any BEAM process. Called only from threads the BEAM does not manage.
    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>);
}

const POLLING: u8 = 0;
const WOKEN: u8 = 1;
const PARKED: u8 = 2;

pub struct RunWaker {
    state: AtomicU8,
    /// The process to wake once parked (0: nobody).
    poller: AtomicU64,
    events: Arc<dyn StoreEvents>,
}

impl RunWaker {
    pub fn new(events: Arc<dyn StoreEvents>) -> Arc<RunWaker> {
        Arc::new(RunWaker {
            state: AtomicU8::new(POLLING),
            poller: AtomicU64::new(0),
            events,
        })
    }

    pub fn events(&self) -> &Arc<dyn StoreEvents> {
        &self.events
    }

    /// Called before every poll. A plain store (not a locked instruction,
    /// which costs as much as a short poll): a wake that must not be lost
    /// comes from a waker registered during the poll, so it happens after
    /// this store, and its swap sees it.
    #[inline]
    pub fn begin_poll(&self) {
        self.state.store(POLLING, Ordering::Release);
    }

    /// After a poll that returned `Pending` with nothing for the poller to
    /// do: parks, so that the next wake goes to `poller`, the process that
    /// made this poll. Returns false when a wake came during the poll (the
    /// run can go on at once).
    #[inline]
    pub fn park(&self, poller: u64) -> bool {
        self.poller.store(poller, Ordering::SeqCst);
        self.state
            .compare_exchange(POLLING, PARKED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Whether a wake came since the last `begin_poll`.
    pub fn was_woken(&self) -> bool {
        self.state.load(Ordering::SeqCst) == WOKEN
    }

    /// Stops a parked run from sending its wake (it is being cancelled).
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
            let poller = self.poller.load(Ordering::SeqCst);
            if poller != 0 {
                self.events.io_ready(poller);
            }
        }
    }
}
