//! Host calls from the driving process's side: the handler registry of a
//! pending call, answering it, and the operations a handler performs
//! through its `Wasmbeam.Caller` (memory, globals, fuel, nested calls).

use crate::handle;
use crate::nif::component_values::{decode, DecodeCx, Path, NORMAL_SCHEDULER_WEIGHT};
use crate::nif::error::{error, guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::step::{encode_poll_result, me};
use crate::nif::values::{decode_arg, decode_args};
use crate::resources::atoms;
use crate::resources::handlers::Handlers;
use crate::resources::store::StoreResource;
use rustler::{Atom, Binary, Encoder, Env, ResourceArc, Term};
use wasmbeam_runtime::driver::error::{msg, Kind, WbError, WbResult};
use wasmbeam_runtime::driver::host_slot::{
    Answer, FailureCause, HandlerFailure, Op, OpResult, ResultTypes,
};
use wasmbeam_runtime::driver::memory::check_normal_scheduler_copy;

/// The handlers of the registry that pending host call `id` belongs to, as
/// a tuple: what a process copies once to run that registry's handlers.
#[rustler::nif]
fn host_handlers(env: Env, store: Handle<StoreResource>, id: u64) -> Term {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let registry = store
            .core
            .host
            .registry_of(id)
            .and_then(|r| r.downcast::<Handlers>().ok());
        match registry {
            Some(handlers) => reply(env, Ok(handlers.all(env))),
            None => error(env, &WbError::new(Kind::Argument, msg::CALLER_GONE)),
        }
    })
}

/// Answers the innermost pending host call with `{:ok, results}`,
/// `{:error, message}` (the handler failed) or `{:bad_answer, message}`
/// (it answered something that is not its results), and polls on. A
/// component handler's answer too large to decode on a normal scheduler
/// is declined: nothing is delivered and the NIF answers `:dirty`, for the
/// caller to answer again through `store_answer_dirty`.
#[rustler::nif]
fn store_answer<'a>(
    env: Env<'a>,
    store: Handle<StoreResource>,
    id: u64,
    answer: Term<'a>,
) -> Term<'a> {
    let store = handle!(env, store, "store");
    guarded(env, || {
        answer_with(env, &store, id, answer, Some(NORMAL_SCHEDULER_WEIGHT))
    })
}

/// `store_answer` on a dirty scheduler, with no bound on the answer.
#[rustler::nif(schedule = "DirtyCpu")]
fn store_answer_dirty<'a>(
    env: Env<'a>,
    store: Handle<StoreResource>,
    id: u64,
    answer: Term<'a>,
) -> Term<'a> {
    let store = handle!(env, store, "store");
    guarded(env, || answer_with(env, &store, id, answer, None))
}

fn answer_with<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    id: u64,
    answer: Term<'a>,
    budget: Option<usize>,
) -> Term<'a> {
    let polled = store.core.answer_unless(
        me(env),
        id,
        |results| {
            // A panic here would leave the guest suspended in its host
            // call with nobody to answer it: the answer fails instead.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decode_answer(answer, results, store, budget)
            }))
            .unwrap_or_else(|payload| {
                Some(failed(
                    FailureCause::BadAnswer,
                    wasmbeam_runtime::driver::error::panic_message(&payload),
                ))
            })
        },
        &store.notify(env),
    );
    match polled {
        Ok(None) => atoms::dirty().encode(env),
        Ok(Some(polled)) => encode_poll_result(env, store, Ok(polled)),
        Err(e) => encode_poll_result(env, store, Err(e)),
    }
}

fn failed(cause: FailureCause, why: String) -> Answer {
    Answer::Failed(HandlerFailure { cause, why })
}

/// The answer, or `None` when a component answer is heavier than `budget`.
fn decode_answer(
    answer: Term,
    results: &ResultTypes,
    store: &ResourceArc<StoreResource>,
    budget: Option<usize>,
) -> Option<Answer> {
    use crate::nif::inspect::inspect;
    if let Ok((tag, values)) = answer.decode::<(Atom, Term)>() {
        let text = || {
            values
                .decode::<String>()
                .unwrap_or_else(|_| inspect(values))
        };
        if tag == atoms::ok() {
            let decoded = match results {
                ResultTypes::Core(types) => {
                    decode_args(values, types, store.id()).map(|v| Some(Answer::Values(v)))
                }
                ResultTypes::Component(ty) => {
                    decode_component_answer(values, ty.as_ref(), store, budget)
                }
            };
            return match decoded {
                Ok(answer) => answer,
                Err(e) => Some(failed(
                    FailureCause::BadAnswer,
                    format!("the handler returned {}: {}", inspect(values), e.message),
                )),
            };
        }
        if tag == atoms::error() {
            return Some(failed(FailureCause::Handler, text()));
        }
        if tag == atoms::bad_answer() {
            return Some(failed(FailureCause::BadAnswer, text()));
        }
    }
    Some(failed(
        FailureCause::BadAnswer,
        format!("malformed answer {}", inspect(answer)),
    ))
}

/// A component handler's answer: its result, decoded against the
/// import's result type (no result: whatever it returned is dropped).
/// Resources it hands over as `own` are the guest's from now on.
/// Within `budget`, or `Ok(None)` when the answer is heavier (decoded
/// again, unbounded, on a dirty scheduler).
fn decode_component_answer(
    value: Term,
    ty: Option<&wasmtime::component::Type>,
    store: &ResourceArc<StoreResource>,
    budget: Option<usize>,
) -> WbResult<Option<Answer>> {
    let Some(ty) = ty else {
        return Ok(Some(Answer::Component(None)));
    };
    let mut cx = DecodeCx {
        store,
        moved: Vec::new(),
        host_answer: true,
        budget,
        too_heavy: false,
        inserted: Vec::new(),
    };
    let mut path = Path::text("the result");
    let val = match decode(value, ty, &mut path, &mut cx) {
        Ok(val) => val,
        Err(e) => {
            // The guest never gets the resources made so far.
            for rep in cx.inserted {
                store.host_states.remove(rep);
            }
            return if cx.too_heavy { Ok(None) } else { Err(e) };
        }
    };
    for handle in &cx.moved {
        handle.moved();
    }
    Ok(Some(Answer::Component(Some(val))))
}

/// Runs one caller operation for the innermost pending host call `id`:
/// `{:memory_read, memory, offset, len}`, `{:memory_write, memory, offset,
/// bytes}`, `{:memory_size, memory}`, `{:global_get, name}`,
/// `{:global_set, name, value}`, `{:fuel}` or `{:call, name, args}`.
/// Copies of more than 64 KiB are refused here: `caller_op_large` takes them.
#[rustler::nif]
fn caller_op<'a>(env: Env<'a>, store: Handle<StoreResource>, id: u64, op: Term<'a>) -> Term<'a> {
    let store = handle!(env, store, "store");
    guarded(env, || run_op(env, &store, id, op, false))
}

/// `caller_op` on a dirty scheduler, for memory copies of any size.
#[rustler::nif(schedule = "DirtyCpu")]
fn caller_op_large<'a>(
    env: Env<'a>,
    store: Handle<StoreResource>,
    id: u64,
    op: Term<'a>,
) -> Term<'a> {
    let store = handle!(env, store, "store");
    guarded(env, || run_op(env, &store, id, op, true))
}

fn run_op<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    id: u64,
    op: Term<'a>,
    dirty: bool,
) -> Term<'a> {
    if let Err(e) = store.core.host.check_frame(id) {
        return error(env, &e);
    }
    let op = match decode_op(env, op, store, id, dirty) {
        Ok(op) => op,
        Err(e) => return error(env, &e),
    };
    let polled = store.core.caller_op(me(env), id, op, &store.notify(env));
    encode_poll_result(env, store, polled)
}

fn decode_op<'a>(
    env: Env<'a>,
    op: Term<'a>,
    store: &ResourceArc<StoreResource>,
    id: u64,
    dirty: bool,
) -> WbResult<Op> {
    let bad = || crate::nif::error::bad_term("unknown caller operation", op);
    let items = rustler::types::tuple::get_tuple(op).map_err(|_| bad())?;
    let tag: Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
    let text = |i: usize| -> WbResult<String> {
        items.get(i).ok_or_else(bad)?.decode().map_err(|_| bad())
    };
    let int =
        |i: usize| -> WbResult<u64> { items.get(i).ok_or_else(bad)?.decode().map_err(|_| bad()) };
    let size_rule = |len: u64| {
        if dirty {
            Ok(())
        } else {
            check_normal_scheduler_copy(len)
        }
    };
    let lookup = |op: Op| {
        store
            .core
            .caller_lookup(me(env), id, op, &store.notify(env))
    };
    Ok(match (tag, items.len()) {
        (t, 4) if t == atoms::memory_read() => {
            let len = int(3)?;
            size_rule(len)?;
            Op::MemoryRead {
                memory: text(1)?,
                offset: int(2)?,
                len,
            }
        }
        (t, 4) if t == atoms::memory_write() => {
            let bytes: Binary = items[3].decode().map_err(|_| bad())?;
            size_rule(bytes.len() as u64)?;
            Op::MemoryWrite {
                memory: text(1)?,
                offset: int(2)?,
                bytes: bytes.as_slice().to_vec(),
            }
        }
        (t, 2) if t == atoms::memory_size() => Op::MemorySize { memory: text(1)? },
        (t, 2) if t == atoms::global_get() => Op::GlobalGet { name: text(1)? },
        (t, 3) if t == atoms::global_set() => {
            let name = text(1)?;
            match lookup(Op::GlobalType { name: name.clone() })? {
                OpResult::GlobalType(_, false) => {
                    return Err(WbError::new(Kind::Argument, "the global is immutable"))
                }
                OpResult::GlobalType(ty, true) => Op::GlobalSet {
                    name,
                    value: decode_arg(items[2], &ty, 0, store.id())?,
                },
                OpResult::Error(e) => return Err(e),
                _ => return Err(bad()),
            }
        }
        (t, 1) if t == atoms::fuel() => Op::Fuel,
        (t, 3) if t == atoms::call() => {
            let name = text(1)?;
            match lookup(Op::ResolveFunc { name })? {
                OpResult::Func(func, sig) => Op::Call {
                    func,
                    args: decode_args(items[2], &sig.params, store.id())?,
                    results: sig.results.len(),
                },
                OpResult::Error(e) => return Err(e),
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    })
}
