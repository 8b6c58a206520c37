//! The store resource: the driver's store (`wasmbeam_runtime`), plus what
//! only the BEAM has: a monitor on the process driving a run, the pids
//! that wait for the store, where streamed WASI output goes, and the
//! store's handler registry.

use crate::resources::atoms;
use crate::resources::engine::EngineResource;
use crate::resources::handlers::Handlers;
use crate::resources::send::{pid_of, raw_pid, send_from_anywhere, tagged};
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Binary, Encoder, Env, LocalPid, Monitor, NewBinary, OwnedEnv, ResourceArc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmbeam_runtime::driver::store::{Notify, StoreCore};
use wasmbeam_runtime::driver::wake::StoreEvents;

/// Where a streaming WASI sink sends what the guest writes:
/// `{:wasmbeam_output, tag, stream, bytes}` to `pid`.
pub struct StreamTarget {
    pid: LocalPid,
    tag: Mutex<(OwnedEnv, SavedTerm)>,
}

impl StreamTarget {
    pub fn new(pid: LocalPid, tag: rustler::Term) -> StreamTarget {
        let owned = OwnedEnv::new();
        let saved = owned.save(tag);
        StreamTarget {
            pid,
            tag: Mutex::new((owned, saved)),
        }
    }

    fn message<'a>(&self, env: Env<'a>, stream: rustler::Atom, bytes: &[u8]) -> rustler::Term<'a> {
        let tag = {
            let tag = self.tag.lock();
            tag.0.run(|o| tag.1.load(o).in_env(env))
        };
        let mut bin = NewBinary::new(env, bytes.len());
        bin.as_mut_slice().copy_from_slice(bytes);
        let bin: Binary = bin.into();
        (atoms::wasmbeam_output(), tag, stream, bin).encode(env)
    }
}

#[derive(Default)]
pub struct StreamTargets {
    pub stdout: Option<StreamTarget>,
    pub stderr: Option<StreamTarget>,
}

/// How a store tells processes things from threads that have no NIF
/// environment (the reaper, I/O completions, pipe writers).
struct BeamEvents {
    /// Filled in once the store is made (it has no id before).
    store_id: AtomicU64,
    streams: Arc<OnceCell<StreamTargets>>,
}

impl BeamEvents {
    fn id(&self) -> u64 {
        self.store_id.load(Ordering::Acquire)
    }
}

impl StoreEvents for BeamEvents {
    fn io_ready(&self, poller: u64) {
        send_from_anywhere(pid_of(poller), tagged(atoms::wasmbeam_wake(), self.id()));
    }

    fn store_free(&self, waiters: Vec<u64>) {
        for waiter in waiters {
            send_from_anywhere(
                pid_of(waiter),
                tagged(atoms::wasmbeam_store_idle(), self.id()),
            );
        }
    }

    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>) {
        let Some(targets) = self.streams.get() else {
            return;
        };
        for (target, stream, bytes) in [
            (&targets.stdout, atoms::stdout(), stdout),
            (&targets.stderr, atoms::stderr(), stderr),
        ] {
            if let (Some(target), false) = (target, bytes.is_empty()) {
                let mut env = OwnedEnv::new();
                let _ = env.send_and_clear(&target.pid, |env| target.message(env, stream, &bytes));
            }
        }
    }
}

pub struct StoreResource {
    pub core: Arc<StoreCore>,
    pub engine: ResourceArc<EngineResource>,
    /// The handlers of the host functions defined in this store (those of
    /// a linked module live in the linked module).
    pub handlers: Arc<Handlers>,
    pub streams: Arc<OnceCell<StreamTargets>>,
    /// Guest resources Elixir let go of, to drop in the guest at the
    /// store's next component call.
    pub dropped_resources: Mutex<Vec<wasmtime::component::ResourceAny>>,
    /// A component call's result too large to encode on a normal
    /// scheduler, kept for `component_take_result` (a dirty NIF).
    pub pending_result: Mutex<Option<(wasmtime::component::Val, wasmtime::component::Type)>>,
    /// The states of resources that components import from Elixir.
    pub host_states: crate::resources::host_states::HostStates,
    /// The process this store monitors: the last one whose run went past
    /// its first poll. The monitor is kept between calls, so a process
    /// that drives many calls pays for it once.
    watched: Mutex<Option<(LocalPid, Monitor)>>,
    /// The pid in `watched`, as a raw term (0 for none), so that the common
    /// case, the same driver again, is one atomic load and no lock.
    watched_pid: AtomicU64,
}

#[rustler::resource_impl]
impl rustler::Resource for StoreResource {
    const IMPLEMENTS_DOWN: bool = true;

    /// The process driving a call died: its run is stopped on the
    /// driver's reaper thread (never here, on a normal scheduler).
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, monitor: Monitor) {
        {
            let mut watched = self.watched.lock();
            if matches!(&*watched, Some((_, m)) if *m == monitor) {
                *watched = None;
                self.watched_pid.store(0, Ordering::Release);
            }
        }
        self.core.driver_down(raw_pid(&pid));
    }
}

impl StoreResource {
    pub fn new(
        engine: ResourceArc<EngineResource>,
        make: impl FnOnce(
            Arc<dyn StoreEvents>,
        ) -> wasmbeam_runtime::driver::error::WbResult<Arc<StoreCore>>,
    ) -> wasmbeam_runtime::driver::error::WbResult<StoreResource> {
        let streams = Arc::new(OnceCell::new());
        let events = Arc::new(BeamEvents {
            store_id: AtomicU64::new(0),
            streams: streams.clone(),
        });
        let core = make(events.clone())?;
        events.store_id.store(core.id, Ordering::Release);
        Ok(StoreResource {
            core,
            engine,
            handlers: Arc::new(Handlers::default()),
            streams,
            dropped_resources: Mutex::new(Vec::new()),
            host_states: Default::default(),
            pending_result: Mutex::new(None),
            watched: Mutex::new(None),
            watched_pid: AtomicU64::new(0),
        })
    }

    pub fn id(&self) -> u64 {
        self.core.id
    }

    /// Makes sure the process driving a run is monitored, so that its death
    /// stops the run.
    pub fn watch(res: &ResourceArc<StoreResource>, env: Env, driver: LocalPid) {
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

    /// How this store tells processes things from inside a NIF.
    pub fn notify<'s, 'e>(&'s self, env: Env<'e>) -> EnvNotify<'s, 'e> {
        EnvNotify { env, store: self }
    }
}

/// Tells processes things with a NIF's environment (`enif_send` with it).
pub struct EnvNotify<'s, 'e> {
    env: Env<'e>,
    store: &'s StoreResource,
}

impl Notify for EnvNotify<'_, '_> {
    fn store_free(&self, waiters: Vec<u64>) {
        for waiter in waiters {
            let _ = self.env.send(
                &pid_of(waiter),
                (atoms::wasmbeam_store_idle(), self.store.id()),
            );
        }
    }

    fn streamed(&self, stdout: Vec<u8>, stderr: Vec<u8>) {
        let Some(targets) = self.store.streams.get() else {
            return;
        };
        for (target, stream, bytes) in [
            (&targets.stdout, atoms::stdout(), stdout),
            (&targets.stderr, atoms::stderr(), stderr),
        ] {
            if let (Some(target), false) = (target, bytes.is_empty()) {
                let message = target.message(self.env, stream, &bytes);
                let _ = self.env.send(&target.pid, message);
            }
        }
    }
}
