//! A run's steps as the terms `Wasmbeam.Driver` reads:
//! `{:ok, results}` / `{:error, %Wasmbeam.Error{}}` when done, `:continue`,
//! `{:host_call, registry, index, args, id}`, `{:io_wait, store_id, ms_left}`,
//! `{:wait, store_id}` for a caller queued behind a busy store.

use crate::nif::component_values::{
    encode_host_args, encode_result, val_heavier_than, NORMAL_SCHEDULER_WEIGHT,
};
use crate::nif::error::{error, reply};
use crate::nif::values::{encode_out, encode_outs};
use crate::resources::atoms;
use crate::resources::component::{ComponentInstanceResource, ComponentResource};
use crate::resources::instance::InstanceResource;
use crate::resources::module::ModuleResource;
use crate::resources::send::raw_pid;
use crate::resources::store::StoreResource;
use rustler::{Binary, Encoder, Env, NewBinary, ResourceArc, Term};
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmbeam_runtime::driver::host_slot::{HostArgs, OpResult};
use wasmbeam_runtime::driver::store::{Begin, Outcome, Polled, RunOptions, Step};

/// The calling process, as the driver knows it.
#[inline]
pub fn me(env: Env) -> u64 {
    raw_pid(&env.pid())
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
#[inline]
fn report_time(env: Env, whole_slice: bool) {
    rustler::schedule::consume_timeslice(env, if whole_slice { 100 } else { 1 });
}

/// The term for a poll's outcome.
#[inline]
pub fn encode_polled<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    polled: Polled,
) -> Term<'a> {
    report_time(env, polled.whole_slice);
    match polled.step {
        Step::Done(Ok(Outcome::Values(outs))) => reply(env, Ok(encode_outs(env, &outs, store))),
        Step::Done(Ok(Outcome::Instance(instance, attached))) => {
            match attached.downcast_ref::<ResourceArc<ModuleResource>>() {
                Some(module) => reply(
                    env,
                    Ok(ResourceArc::new(InstanceResource::new(
                        store.clone(),
                        instance,
                        module.clone(),
                    ))),
                ),
                None => error(
                    env,
                    &WbError::new(Kind::Panic, "an instance without its module"),
                ),
            }
        }
        Step::Done(Ok(Outcome::ComponentValue(Some((val, ty)))))
            if val_heavier_than(&val, NORMAL_SCHEDULER_WEIGHT) =>
        {
            // Too large to encode here: kept for a dirty NIF.
            *store.pending_result.lock() = Some((val, ty));
            (atoms::dirty_result(), store.id()).encode(env)
        }
        Step::Done(Ok(Outcome::ComponentValue(value))) => encode_result(env, value, store),
        Step::Done(Ok(Outcome::ComponentBytes(bytes))) => {
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(&bytes);
            (atoms::ok(), Binary::from(bin)).encode(env)
        }
        Step::Done(Ok(Outcome::ComponentInstance(instance, attached))) => {
            match attached.downcast_ref::<ResourceArc<ComponentResource>>() {
                Some(component) => reply(
                    env,
                    Ok(ResourceArc::new(ComponentInstanceResource::new(
                        store.clone(),
                        instance,
                        component.clone(),
                    ))),
                ),
                None => error(
                    env,
                    &WbError::new(Kind::Panic, "a component instance without its component"),
                ),
            }
        }
        Step::Done(Err(e)) => error(env, &e),
        Step::Continue => atoms::r#continue().encode(env),
        Step::HostCall(req) => {
            let args = match &req.args {
                HostArgs::Core(outs) => encode_outs(env, outs, store),
                HostArgs::Component(values, types, host) => {
                    encode_host_args(env, values, types, host, store)
                }
            };
            (atoms::host_call(), req.registry, req.index, args, req.id).encode(env)
        }
        Step::OpDone(result) => encode_op_result(env, result, store),
        Step::IoWait { ms_left } => (atoms::io_wait(), store.id(), ms_left).encode(env),
    }
}

/// The term for a poll's outcome, or its error.
pub fn encode_poll_result<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    polled: WbResult<Polled>,
) -> Term<'a> {
    match polled {
        Ok(polled) => encode_polled(env, store, polled),
        Err(e) => error(env, &e),
    }
}

/// The term for a started run. A run that goes on past its first poll
/// is watched: its driver's death stops it.
#[inline]
/// Checks that `driven`, the store the caller will drive (the `:store` of
/// the struct it called through), is `owner`, the store the run starts on.
/// Every NIF that starts a run on a store it finds through another handle
/// (an instance, a function, a resource) checks this first: a run started
/// on one store while the caller drives another would be left with nobody
/// to drive it, the real store busy until the caller dies.
pub fn driven_store(owner: &StoreResource, driven: &StoreResource) -> WbResult<()> {
    if owner.id() == driven.id() {
        Ok(())
    } else {
        Err(WbError::new(
            Kind::Argument,
            "the struct's :store is not the store this belongs to (a changed or forged struct)",
        ))
    }
}

pub fn encode_begin<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    begin: WbResult<Begin>,
) -> Term<'a> {
    match begin {
        Ok(Begin::Queued) => (atoms::wait(), store.id()).encode(env),
        Ok(Begin::Polled(polled)) => {
            if !matches!(polled.step, Step::Done(_)) {
                StoreResource::watch(store, env, env.pid());
            }
            encode_polled(env, store, polled)
        }
        Err(e) => error(env, &e),
    }
}

/// A store found busy by a lookup before a run could start: queue the
/// caller when the options say to wait.
pub fn busy_or_wait<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    err: WbError,
    opts: &RunOptions,
) -> Term<'a> {
    if err.kind != Kind::Busy || !opts.wait {
        return error(env, &err);
    }
    match store.core.wait_for(me(env)) {
        Ok(true) => (atoms::wait(), store.id()).encode(env),
        // It became free meanwhile: wake ourselves to try again at once.
        Ok(false) => {
            let _ = env.send(&env.pid(), (atoms::wasmbeam_store_idle(), store.id()));
            (atoms::wait(), store.id()).encode(env)
        }
        Err(e) => error(env, &e),
    }
}

/// The result of a caller operation.
pub fn encode_op_result<'a>(
    env: Env<'a>,
    result: OpResult,
    store: &ResourceArc<StoreResource>,
) -> Term<'a> {
    let ok = |t: Term<'a>| reply(env, Ok(t));
    match result {
        OpResult::Bytes(bytes) => {
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(&bytes);
            ok(Binary::from(bin).to_term(env))
        }
        OpResult::Size(bytes, pages) => ok((bytes, pages).encode(env)),
        OpResult::Unit => ok(atoms::ok().encode(env)),
        OpResult::Value(out) => ok(encode_out(env, &out, store)),
        OpResult::Values(outs) => ok(encode_outs(env, &outs, store)),
        OpResult::Fuel(fuel) => ok(fuel.encode(env)),
        OpResult::GlobalType(..) | OpResult::Func(..) => ok(atoms::ok().encode(env)),
        OpResult::Error(e) => error(env, &e),
    }
}
