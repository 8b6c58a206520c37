//! Stores: creation with limits, the NIFs that drive a run after its
//! first poll (resume, deadline in I/O, cancel), and fuel.

use crate::handle;
use crate::nif::error::{error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::step::{encode_poll_result, me};
use crate::resources::atoms;
use crate::resources::engine::EngineResource;
use crate::resources::store::StoreResource;
use rustler::{Encoder, Env, NifMap, ResourceArc, Term};
use wasmbeam_runtime::driver::error::{guard, Kind, WbError};
use wasmbeam_runtime::driver::store::{Cancelled, RunOptions, StoreCore};
use wasmbeam_runtime::driver::store_data::StoreLimitsSpec;

#[derive(NifMap)]
pub struct StoreOptions {
    memory_size: Option<usize>,
    table_elements: Option<usize>,
    instances: Option<usize>,
    tables: Option<usize>,
    memories: Option<usize>,
    fuel: Option<u64>,
}

/// Per-call options, decoded from the map `Wasmbeam.CallOptions` makes.
#[derive(NifMap)]
pub struct CallOptions {
    pub timeout: Option<u64>,
    pub fuel: Option<u64>,
    /// Queue behind a running call instead of failing with `:busy`.
    pub wait: bool,
}

impl CallOptions {
    pub fn run(&self) -> RunOptions {
        RunOptions {
            timeout: self.timeout,
            fuel: self.fuel,
            wait: self.wait,
        }
    }
}

#[rustler::nif]
fn store_new(env: Env, engine: Handle<EngineResource>, options: StoreOptions) -> Term {
    let engine = handle!(env, engine, "engine");
    let limits = StoreLimitsSpec {
        memory_size: options.memory_size,
        table_elements: options.table_elements,
        instances: options.instances,
        tables: options.tables,
        memories: options.memories,
    };
    let result = guard(|| {
        let core = engine.core.clone();
        StoreResource::new(engine.clone(), |events| {
            StoreCore::new(core, &limits, options.fuel, events)
        })
        .map(ResourceArc::new)
    });
    reply(env, result)
}

/// Polls the call running on `store` for one more slice.
#[rustler::nif]
fn store_resume(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let polled = store.core.resume(me(env), &store.notify(env));
        encode_poll_result(env, &store, polled)
    })
}

/// The deadline of a call passed while its guest waited for I/O: stop it.
/// The guest is not running Wasm, so it cannot be made to trap at an
/// epoch check; if it does not finish at once the store is lost. Stopping
/// polls and may sleep: a dirty scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn store_io_timeout(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let message = match store.core.cancel(None, &store.notify(env)) {
            Ok(_) => "the call ran past its timeout while waiting for I/O".to_string(),
            Err(e) if e.kind == Kind::Poisoned => "the call ran past its timeout while waiting \
                for I/O; the store is lost (recreate the instance)"
                .to_string(),
            Err(e) => e.into_message(),
        };
        error(env, &WbError::new(Kind::Timeout, message))
    })
}

/// Whether the store can still run calls: false once it is poisoned (a
/// panic, or a call that could not be stopped, e.g. one that timed out
/// while its guest was parked in host I/O). Answered at once, whatever
/// runs on the store.
/// Milliseconds left before the running call's deadline, or `nil`.
#[rustler::nif]
fn store_time_left(store: ResourceArc<StoreResource>) -> Option<u64> {
    store.core.time_left_ms()
}

/// Takes the calling process out of the store's queue of waiters (it
/// gave up waiting): `true` when it was still queued, `false` when the
/// store has told it already.
#[rustler::nif]
fn store_unwait(env: Env, store: ResourceArc<StoreResource>) -> bool {
    store.core.unwait(crate::nif::step::me(env))
}

#[rustler::nif]
fn store_usable(store: ResourceArc<StoreResource>) -> bool {
    store.core.usable()
}

#[rustler::nif]
fn store_fuel(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let result = store
            .core
            .with_idle(|s| s.get_fuel().map_err(|_| WbError::fuel_disabled()));
        reply(env, result)
    })
}

/// The fuel the last call used: what it started with minus what is left.
#[rustler::nif]
fn store_fuel_consumed(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let result = store.core.with_idle(|s| {
            let left = s.get_fuel().map_err(|_| WbError::fuel_disabled())?;
            Ok(s.data().fuel_at_start.saturating_sub(left))
        });
        reply(env, result)
    })
}

#[rustler::nif]
fn store_set_fuel(env: Env, store: Handle<StoreResource>, fuel: u64) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let result = store
            .core
            .with_idle(|s| s.set_fuel(fuel).map_err(|_| WbError::fuel_disabled()));
        reply(env, result.map(|()| atoms::ok()))
    })
}

/// Cancels the call running on `store`. Only the process driving the call
/// may cancel it (an instance process cancelling on behalf of its caller).
/// Answers `:ok` when the call was stopped (the store is idle and usable),
/// `:idle` when no call was running, and `{:error, %Wasmbeam.Error{kind:
/// :poisoned}}` when the store is lost (already, or because the call could
/// not be stopped). Stopping polls and may sleep: a dirty scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn store_cancel(env: Env, store: Handle<StoreResource>) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        match store.core.cancel(Some(me(env)), &store.notify(env)) {
            Ok(Cancelled::Stopped) => atoms::ok().encode(env),
            Ok(Cancelled::Idle) => atoms::idle().encode(env),
            Err(e) => error(env, &e),
        }
    })
}
