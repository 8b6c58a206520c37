//! Messages to processes from wherever native code runs.
//!
//! Inside a NIF, a message is sent with the NIF's environment. From a
//! thread of Wasmbeam's own (the reaper, Tokio's I/O threads) it is sent
//! with an environment of its own. A BEAM scheduler thread without a NIF
//! environment at hand (a waker called while an Elixir process writes to
//! a WASI pipe) can do neither: the message goes through one small
//! notifier thread.

use parking_lot::Mutex;
use rustler::{Encoder, Env, LocalPid, OwnedEnv, Term};
use std::sync::mpsc::{channel, Sender};

/// A local pid as the raw term the BEAM identifies it by (never 0): the
/// token the driver (`wasmbeam_runtime`) knows processes by.
pub fn raw_pid(pid: &LocalPid) -> u64 {
    const _: () = assert!(std::mem::size_of::<rustler::sys::ErlNifPid>() == 8);
    // SAFETY: `ErlNifPid` is a `repr(C)` struct of one `ERL_NIF_TERM`, a
    // 64-bit integer (checked above).
    unsafe { std::mem::transmute::<rustler::sys::ErlNifPid, u64>(*pid.as_c_arg()) }
}

/// The pid of a token made by [`raw_pid`].
pub fn pid_of(raw: u64) -> LocalPid {
    // SAFETY: tokens are only made by `raw_pid` from live pid terms; a pid
    // term is an immediate (no heap data), valid in any environment, and
    // sending to a pid that has exited is harmless.
    let c = unsafe { std::mem::transmute::<u64, rustler::sys::ErlNifPid>(raw) };
    LocalPid::from_c_arg(c)
}

/// A message built in whatever environment sends it.
pub type Message = Box<dyn for<'a> Fn(Env<'a>) -> Term<'a> + Send>;

/// Sends `message` to `pid` from a thread that has no NIF environment.
pub fn send_from_anywhere(pid: LocalPid, message: Message) {
    if rustler::thread::is_scheduler_thread() {
        let _ = NOTIFIER.lock().send((pid, message));
    } else {
        send_owned(pid, &message);
    }
}

fn send_owned(pid: LocalPid, message: &Message) {
    let mut env = OwnedEnv::new();
    let _ = env.send_and_clear(&pid, message);
}

/// `{tag, id}`, the shape of every notification a store sends.
pub fn tagged(tag: rustler::Atom, id: u64) -> Message {
    Box::new(move |env| (tag, id).encode(env))
}

static NOTIFIER: once_cell::sync::Lazy<Mutex<Sender<(LocalPid, Message)>>> =
    once_cell::sync::Lazy::new(|| {
        let (tx, rx) = channel::<(LocalPid, Message)>();
        std::thread::Builder::new()
            .name("wasmbeam-wake".into())
            .spawn(move || {
                for (pid, message) in rx {
                    send_owned(pid, &message);
                }
            })
            .expect("spawn the wake notifier thread");
        Mutex::new(tx)
    });
