//! Compiles that must not hold one of the VM's dirty schedulers: a few
//! threads of Wasmbeam's own run them, one job at a time each, and tell
//! the caller by message. While two large modules compiled on dirty
//! schedulers, `Module.compile("(module)")` once waited 7.5 s for one, as
//! did everything else that needs a dirty scheduler (hashing in the module
//! cache, deserializing).
//!
//! A job watches its caller: when the caller dies before the job starts,
//! the job is dropped unrun (a compile that has started runs to its end,
//! as Wasmtime cannot stop one, and its result is dropped).

use crate::resources::send::{send_from_anywhere, Message};
use parking_lot::Mutex;
use rustler::{Env, LocalPid, Monitor, ResourceArc};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// The work of a job: compiles, and makes the message for the caller
/// (given the job's id).
pub type Work = Box<dyn FnOnce(u64) -> Message + Send>;

/// A compile in the queue or running, watched by its caller's monitor.
pub struct CompileJob {
    pub id: u64,
    abandoned: AtomicBool,
}

#[rustler::resource_impl]
impl rustler::Resource for CompileJob {
    const IMPLEMENTS_DOWN: bool = true;

    /// The caller died: nobody waits for the result any more.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.abandoned.store(true, Ordering::Release);
    }
}

struct Queued {
    job: ResourceArc<CompileJob>,
    caller: LocalPid,
    work: Work,
}

/// How many compiles run at once. Each uses Wasmtime's own parallel
/// compilation inside, so a few are enough to keep the CPUs busy.
const WORKERS: usize = 2;

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

static QUEUE: once_cell::sync::Lazy<Mutex<Sender<Queued>>> = once_cell::sync::Lazy::new(|| {
    let (tx, rx) = channel::<Queued>();
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..WORKERS {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("wasmbeam-compile-{n}"))
            .spawn(move || work(&rx))
            .expect("spawn a compile thread");
    }
    Mutex::new(tx)
});

fn work(rx: &Mutex<Receiver<Queued>>) {
    loop {
        let next = rx.lock().recv();
        let Ok(queued) = next else { return };
        if queued.job.abandoned.load(Ordering::Acquire) {
            continue;
        }
        let message = (queued.work)(queued.job.id);
        if !queued.job.abandoned.load(Ordering::Acquire) {
            send_from_anywhere(queued.caller, message);
        }
    }
}

/// Queues `work` for the calling process, watched by a monitor; returns
/// the job's id, which the result message carries.
pub fn submit(env: Env, work: Work) -> u64 {
    let job = ResourceArc::new(CompileJob {
        id: NEXT_JOB.fetch_add(1, Ordering::Relaxed),
        abandoned: AtomicBool::new(false),
    });
    let caller = env.pid();
    // A caller that is already gone gets no monitor: nothing to run for.
    if job.monitor(Some(env), &caller).is_none() {
        return job.id;
    }
    let id = job.id;
    let _ = QUEUE.lock().send(Queued { job, caller, work });
    id
}
