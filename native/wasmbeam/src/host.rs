//! Host functions: imports implemented in Elixir.
//!
//! When the guest calls one, its Wasmtime host future records the request in
//! the store's [`HostShared`] slot and returns `Pending`, which suspends the
//! guest's fiber. The driver (see `store.rs`) sees the request after the
//! poll and returns `{:host_call, registry, index, args, id}` to the BEAM
//! process that drives the call; that process runs the handler and answers
//! with `store_answer`, which wakes the host future with the results.
//!
//! While a host call is pending, its handler may act on the guest through
//! the caller handle (`caller_op`): each operation is delivered to the
//! suspended host future the same way, which performs it with its
//! `wasmtime::Caller` and hands back the result. Calling an export this way
//! runs guest code nested inside the host call, driven like any call.
//! No thread ever waits: everything happens in polls by BEAM processes.

use crate::error::{chain_message, reply, Kind, WbError, WbResult};
use crate::func::Signature;
use crate::store::{drive_running, RunningGuard, StoreData, StoreResource};
use crate::values::{arg_to_val, decode_arg, decode_args, val_to_out, Arg, Args, Out, Outs};
use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Atom, Binary, Encoder, Env, NewBinary, OwnedEnv, ResourceArc, Term};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use wasmtime::{Caller, Extern, Func, FuncType, Val, ValType};

/// What the suspended host future is told.
enum Inbound {
    Answer(Args),
    Fail(String),
    Op(Op),
}

/// What a handler can ask of the guest through its caller handle.
pub enum Op {
    MemoryRead {
        memory: String,
        offset: u64,
        len: u64,
    },
    MemoryWrite {
        memory: String,
        offset: u64,
        bytes: Vec<u8>,
    },
    MemorySize {
        memory: String,
    },
    GlobalType {
        name: String,
    },
    GlobalGet {
        name: String,
    },
    GlobalSet {
        name: String,
        value: Arg,
    },
    Fuel,
    ResolveFunc {
        name: String,
    },
    Call {
        func: Func,
        args: Args,
        results: usize,
    },
}

pub enum OpResult {
    Bytes(Vec<u8>),
    Size(usize, u64),
    Unit,
    Value(Out),
    Values(Outs),
    Fuel(u64),
    GlobalType(ValType, bool),
    Func(Func, Arc<Signature>),
    Error(WbError),
}

/// A host call the guest made, waiting for the driver to pick it up: which
/// handler (registry and index) to run with which arguments.
pub struct HostRequest {
    pub id: u64,
    registry: u64,
    index: usize,
    pub args: Outs,
}

/// A pending host call: what its answer must look like.
struct Frame {
    id: u64,
    import: HostImport,
    /// The handler is running an operation through its caller (a nested
    /// call that may take many polls).
    in_op: bool,
}

/// Where a host call stands when its answer arrives.
enum FrameStatus {
    /// It was innermost and waiting: the answer has been delivered.
    Delivered,
    /// Still busy with a nested call made through its caller, or waiting
    /// behind a nested host call: the answer cannot be delivered.
    Blocked(Arc<str>),
    Gone,
}

#[derive(Default)]
struct Slot {
    outgoing: Option<HostRequest>,
    incoming: Option<Inbound>,
    op_result: Option<OpResult>,
    frames: Vec<Frame>,
}

/// Shared by a store resource and its store's data.
pub struct HostShared {
    slot: Mutex<Slot>,
    /// The handlers of the host functions defined in this store (those of
    /// a linked module live in the linked module).
    pub handlers: Arc<Handlers>,
    pub cancel: Arc<AtomicBool>,
    next_id: AtomicU64,
    /// Set when a host call used the slot since the last reset.
    used: AtomicBool,
}

/// Elixir handlers of host functions, kept as terms in an environment of
/// their own. A registry is append-only and has an id that is never
/// reused, so a process that runs its handlers can keep a copy of them
/// (see `Wasmbeam.HostCall`): a host call then names its handler by
/// registry and index, and nothing is copied per call.
pub struct Handlers {
    pub id: u64,
    saved: Mutex<SavedHandlers>,
}

static NEXT_REGISTRY_ID: AtomicU64 = AtomicU64::new(1);

struct SavedHandlers {
    env: OwnedEnv,
    terms: Vec<SavedTerm>,
}

impl Default for Handlers {
    fn default() -> Self {
        Handlers {
            id: NEXT_REGISTRY_ID.fetch_add(1, Ordering::Relaxed),
            saved: Mutex::new(SavedHandlers {
                env: OwnedEnv::new(),
                terms: Vec::new(),
            }),
        }
    }
}

impl Handlers {
    /// Every handler registered so far, as a tuple in `env`.
    pub fn all<'a>(&self, env: Env<'a>) -> Term<'a> {
        let saved = self.saved.lock();
        let terms: Vec<Term<'a>> = saved.env.run(|owned| {
            saved
                .terms
                .iter()
                .map(|t| t.load(owned).in_env(env))
                .collect()
        });
        rustler::types::tuple::make_tuple(env, &terms)
    }

    pub fn register(&self, handler: Term) -> usize {
        let mut saved = self.saved.lock();
        let term = saved.env.save(handler);
        saved.terms.push(term);
        saved.terms.len() - 1
    }
}

/// What the driver finds after a poll that returned `Pending`.
pub enum Pending {
    HostCall(HostRequest),
    OpDone(OpResult),
    Yielded,
}

impl HostShared {
    pub fn new(cancel: Arc<AtomicBool>) -> HostShared {
        HostShared {
            slot: Mutex::new(Slot::default()),
            handlers: Arc::new(Handlers::default()),
            cancel,
            next_id: AtomicU64::new(1),
            used: AtomicBool::new(false),
        }
    }

    pub fn take_pending(&self) -> Pending {
        let mut slot = self.slot.lock();
        if let Some(req) = slot.outgoing.take() {
            Pending::HostCall(req)
        } else if let Some(result) = slot.op_result.take() {
            Pending::OpDone(result)
        } else {
            Pending::Yielded
        }
    }

    /// Forgets every pending host call (the run they belonged to is over).
    pub fn reset(&self) {
        // Most runs make no host call: skip the lock for them.
        if self.used.swap(false, Ordering::AcqRel) {
            let mut slot = self.slot.lock();
            slot.outgoing = None;
            slot.incoming = None;
            slot.op_result = None;
            // Keep the allocation for the next run's host calls.
            slot.frames.clear();
        }
    }

    /// The innermost pending host call, if it is `id`.
    fn check_frame(&self, id: u64) -> WbResult<()> {
        let slot = self.slot.lock();
        match slot.frames.last() {
            Some(frame) if frame.id == id => Ok(()),
            Some(_) => Err(WbError::new(
                Kind::Busy,
                "another host call is in progress inside this one; use its caller",
            )),
            None => Err(WbError::new(
                Kind::Argument,
                "the host call this caller belongs to has returned",
            )),
        }
    }

    /// The handler registry of pending host call `id`.
    fn handlers_of(&self, id: u64) -> Option<Arc<Handlers>> {
        let slot = self.slot.lock();
        let frame = slot.frames.iter().rev().find(|f| f.id == id)?;
        Some(frame.import.0.handlers.clone())
    }

    fn deliver(&self, inbound: Inbound) {
        let mut slot = self.slot.lock();
        if matches!(inbound, Inbound::Op(_)) {
            if let Some(frame) = slot.frames.last_mut() {
                frame.in_op = true;
            }
        }
        slot.incoming = Some(inbound);
    }

    /// Delivers the answer to host call `id` if it is the innermost one
    /// and waiting (one lock for the check and the delivery; `decode`
    /// turns the answer into what the host future receives, given the
    /// result types).
    fn answer(&self, id: u64, decode: impl FnOnce(&[ValType]) -> Inbound) -> FrameStatus {
        let mut slot = self.slot.lock();
        let Some(i) = slot.frames.iter().rposition(|f| f.id == id) else {
            return FrameStatus::Gone;
        };
        let frame = &slot.frames[i];
        if i + 1 != slot.frames.len() || frame.in_op {
            return FrameStatus::Blocked(frame.import.0.name.clone());
        }
        let inbound = decode(&frame.import.0.results);
        slot.incoming = Some(inbound);
        FrameStatus::Delivered
    }
}

/// Creates a host function in the store whose calls go to `handler`.
pub fn define(
    store: &mut crate::store::WStore,
    host: &Arc<HostShared>,
    name: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
    handler: Term,
) -> WbResult<Func> {
    let import = HostImport::new(&host.handlers, name, results.clone(), handler);
    if let Some(func) = crate::typed::host_func(&mut *store, &params, &results, &import) {
        return Ok(func);
    }
    let ty = FuncType::new(store.engine(), params, results);
    let func = Func::new_async(&mut *store, ty, move |caller, params, out| {
        Box::new(host_call(caller, params, out, import.clone()))
    });
    Ok(func)
}

/// What a host function's calls need to know: whose handler to run, and
/// what its answer must look like. Cloned into every call's future: one
/// reference count, since atomic operations are a large share of a host
/// call's cost.
#[derive(Clone)]
pub struct HostImport(Arc<ImportInfo>);

struct ImportInfo {
    handlers: Arc<Handlers>,
    index: usize,
    name: Arc<str>,
    results: Arc<[ValType]>,
}

impl HostImport {
    pub fn new(
        handlers: &Arc<Handlers>,
        name: String,
        results: Vec<ValType>,
        handler: Term,
    ) -> HostImport {
        HostImport(Arc::new(ImportInfo {
            index: handlers.register(handler),
            handlers: handlers.clone(),
            name: Arc::from(name),
            results: Arc::from(results),
        }))
    }
}

/// The body of the host functions whose signatures `crate::typed` does not
/// cover: [`call_handler`] with Wasmtime's `Val`s.
pub async fn host_call(
    mut caller: Caller<'_, StoreData>,
    params: &[Val],
    out: &mut [Val],
    import: HostImport,
) -> wasmtime::Result<()> {
    let args: Outs = params.iter().map(|v| val_to_out(*v, &mut caller)).collect();
    let values = call_handler(&mut caller, args, import.clone()).await?;
    for (slot, arg) in out.iter_mut().zip(values) {
        *slot = arg_to_val(arg, &mut caller).map_err(|e| {
            wasmtime::Error::msg(format!(
                "host function {}: {}",
                import.0.name,
                chain_message(&e)
            ))
        })?;
    }
    Ok(())
}

/// Hands a host call to the driving process through the store's host slot
/// and waits for the answer: the results, decoded against the import's
/// result types.
pub async fn call_handler(
    caller: &mut Caller<'_, StoreData>,
    args: Outs,
    import: HostImport,
) -> wasmtime::Result<Args> {
    let id = {
        let shared = &caller.data().host;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        shared.used.store(true, Ordering::Release);
        let mut slot = shared.slot.lock();
        slot.outgoing = Some(HostRequest {
            id,
            registry: import.0.handlers.id,
            index: import.0.index,
            args,
        });
        slot.frames.push(Frame {
            id,
            import,
            in_op: false,
        });
        id
    };
    let outcome = serve(caller, id).await;
    let data = caller.data();
    if outcome.is_ok() && data.nested_out_of_fuel {
        // A call made through the caller used up the fuel: the whole call
        // is out of it, as it would be had the guest made that call itself.
        return Err(wasmtime::Trap::OutOfFuel.into());
    }
    if outcome.is_ok() && data.timed_out {
        // Likewise for the deadline: end here rather than when the guest
        // next reaches an epoch check (it may never).
        return Err(wasmtime::Error::msg("the call ran past its timeout"));
    }
    outcome.map_err(|(name, why)| wasmtime::Error::msg(format!("host function {name}: {why}")))
}

/// What wakes a waiting host call.
enum Woken {
    Op(Op),
    Answer(Args),
    /// The handler failed, or the call was cancelled; with the popped frame.
    Failed(Option<Frame>, String),
}

/// Waits for the answer, carrying out the caller operations that arrive
/// before it; the host call's frame is gone when this returns. A failure
/// comes with the import's name.
async fn serve(caller: &mut Caller<'_, StoreData>, id: u64) -> Result<Args, (Arc<str>, String)> {
    loop {
        // The first poll cannot find anything: the driver has not even
        // seen the request (or the operation's result) yet.
        let mut first = true;
        let woken = {
            let shared = &caller.data().host;
            poll_fn(|_| {
                if std::mem::take(&mut first) {
                    return Poll::Pending;
                }
                let mut slot = shared.slot.lock();
                if shared.cancel.load(Ordering::Relaxed) {
                    let frame = slot.frames.pop();
                    return Poll::Ready(Woken::Failed(frame, "the call was cancelled".into()));
                }
                // The frame is popped under the same lock as the answer is taken.
                match slot.incoming.take() {
                    Some(Inbound::Op(op)) => Poll::Ready(Woken::Op(op)),
                    Some(Inbound::Answer(values)) => {
                        slot.frames.pop();
                        Poll::Ready(Woken::Answer(values))
                    }
                    Some(Inbound::Fail(why)) => Poll::Ready(Woken::Failed(slot.frames.pop(), why)),
                    None => Poll::Pending,
                }
            })
            .await
        };
        match woken {
            Woken::Answer(values) => return Ok(values),
            Woken::Failed(frame, why) => {
                let name = frame.map_or_else(|| Arc::from("?"), |f| f.import.0.name.clone());
                return Err((name, why));
            }
            Woken::Op(op) => {
                // Boxed: a nested call's future is large, and without the
                // box every host call would carry (and copy) its space.
                let result = Box::pin(run_op(caller, op)).await;
                let mut slot = caller.data().host.slot.lock();
                if let Some(frame) = slot.frames.iter_mut().find(|f| f.id == id) {
                    frame.in_op = false;
                }
                slot.op_result = Some(result);
            }
        }
    }
}

fn not_found(what: &str, name: &str) -> OpResult {
    OpResult::Error(WbError::new(
        Kind::NotFound,
        format!("the calling instance exports no {what} named {name:?}"),
    ))
}

async fn run_op(caller: &mut Caller<'_, StoreData>, op: Op) -> OpResult {
    match op {
        Op::MemoryRead {
            memory,
            offset,
            len,
        } => match caller.get_export(&memory) {
            Some(Extern::Memory(m)) => {
                let data = m.data(&*caller);
                match crate::memory::range(offset, len, data.len()) {
                    Ok(r) => OpResult::Bytes(data[r].to_vec()),
                    Err(e) => OpResult::Error(e),
                }
            }
            _ => not_found("memory", &memory),
        },
        Op::MemoryWrite {
            memory,
            offset,
            bytes,
        } => match caller.get_export(&memory) {
            Some(Extern::Memory(m)) => {
                let data = m.data_mut(&mut *caller);
                match crate::memory::range(offset, bytes.len() as u64, data.len()) {
                    Ok(r) => {
                        data[r].copy_from_slice(&bytes);
                        OpResult::Unit
                    }
                    Err(e) => OpResult::Error(e),
                }
            }
            _ => not_found("memory", &memory),
        },
        Op::MemorySize { memory } => match caller.get_export(&memory) {
            Some(Extern::Memory(m)) => OpResult::Size(m.data_size(&*caller), m.size(&*caller)),
            _ => not_found("memory", &memory),
        },
        Op::GlobalType { name } => match caller.get_export(&name) {
            Some(Extern::Global(g)) => {
                let ty = g.ty(&*caller);
                OpResult::GlobalType(
                    ty.content().clone(),
                    ty.mutability() == wasmtime::Mutability::Var,
                )
            }
            _ => not_found("global", &name),
        },
        Op::GlobalGet { name } => match caller.get_export(&name) {
            Some(Extern::Global(g)) => {
                let val = g.get(&mut *caller);
                OpResult::Value(val_to_out(val, &mut *caller))
            }
            _ => not_found("global", &name),
        },
        Op::GlobalSet { name, value } => match caller.get_export(&name) {
            Some(Extern::Global(g)) => {
                let result = arg_to_val(value, &mut *caller).and_then(|v| g.set(&mut *caller, v));
                match result {
                    Ok(()) => OpResult::Unit,
                    Err(e) => OpResult::Error(WbError::new(Kind::Type, chain_message(&e))),
                }
            }
            _ => not_found("global", &name),
        },
        Op::Fuel => match caller.get_fuel() {
            Ok(fuel) => OpResult::Fuel(fuel),
            Err(_) => OpResult::Error(WbError::new(
                Kind::Argument,
                "fuel needs an engine created with consume_fuel: true",
            )),
        },
        Op::ResolveFunc { name } => match caller.get_export(&name) {
            Some(Extern::Func(f)) => {
                let sig = Arc::new(Signature::of(&f, &*caller));
                OpResult::Func(f, sig)
            }
            _ => not_found("function", &name),
        },
        Op::Call {
            func,
            args,
            results,
        } => {
            let mut params = Vec::with_capacity(args.len());
            for arg in args {
                match arg_to_val(arg, &mut *caller) {
                    Ok(v) => params.push(v),
                    Err(e) => return OpResult::Error(WbError::new(Kind::Type, chain_message(&e))),
                }
            }
            let mut out = vec![Val::I32(0); results];
            match func.call_async(&mut *caller, &params, &mut out).await {
                Ok(()) => OpResult::Values(
                    out.into_iter()
                        .map(|v| val_to_out(v, &mut *caller))
                        .collect(),
                ),
                Err(e) => {
                    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
                        caller.data_mut().nested_out_of_fuel = true;
                    }
                    let timed_out = caller.data().timed_out;
                    OpResult::Error(WbError::from_run(e, timed_out))
                }
            }
        }
    }
}

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
        OpResult::Unit => ok(crate::atoms::ok().encode(env)),
        OpResult::Value(out) => ok(crate::values::encode_out(env, &out, store)),
        OpResult::Values(outs) => ok(crate::values::encode_outs(env, &outs, store)),
        OpResult::Fuel(fuel) => ok(fuel.encode(env)),
        OpResult::GlobalType(..) | OpResult::Func(..) => ok(crate::atoms::ok().encode(env)),
        OpResult::Error(e) => reply::<()>(env, Err(e)),
    }
}

/// `{:host_call, registry, index, args, id}` for the driver, which finds
/// the handler in its copy of the registry and builds the
/// `%Wasmbeam.Caller{}` itself (both cheaper in Elixir than here).
pub fn encode_request<'a>(
    env: Env<'a>,
    req: HostRequest,
    store: &ResourceArc<StoreResource>,
) -> Term<'a> {
    let args = crate::values::encode_outs(env, &req.args, store);
    (
        crate::atoms::host_call(),
        req.registry,
        req.index,
        args,
        req.id,
    )
        .encode(env)
}

/// The handlers of the registry that pending host call `id` belongs to, as
/// a tuple: what a process copies once to run that registry's handlers.
#[rustler::nif]
fn host_handlers(env: Env, store: ResourceArc<StoreResource>, id: u64) -> Term {
    match store.host.handlers_of(id) {
        Some(handlers) => reply(env, Ok(handlers.all(env))),
        None => reply::<()>(
            env,
            Err(WbError::new(
                Kind::Argument,
                "the host call this caller belongs to has returned",
            )),
        ),
    }
}

/// Answers the innermost pending host call with `{:ok, results}` or
/// `{:error, message}` and polls on.
#[rustler::nif]
fn store_answer<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    id: u64,
    answer: Term<'a>,
) -> Term<'a> {
    let mut guard = match RunningGuard::lock(&store) {
        Ok(g) => g,
        Err(e) => return reply::<()>(env, Err(e)),
    };
    match store
        .host
        .answer(id, |results| decode_answer(answer, results, &store))
    {
        FrameStatus::Delivered => drive_running(env, &store, &mut guard),
        FrameStatus::Blocked(name) => {
            // The handler failed (or answered) while work it started through
            // its caller is still running: that work can no longer be
            // completed in order, so the whole call stops here.
            let why = match decode_answer(answer, &[], &store) {
                Inbound::Fail(why) if !why.starts_with("the handler returned") => why,
                _ => {
                    "the handler answered while a call it made through its caller was still running"
                        .to_string()
                }
            };
            guard.cancel(env, &store);
            let message = format!("host function {name}: {why} (the call was cancelled)");
            reply::<()>(env, Err(WbError::new(Kind::Trap, message)))
        }
        FrameStatus::Gone => reply::<()>(
            env,
            Err(WbError::new(
                Kind::Argument,
                "the host call this caller belongs to has returned",
            )),
        ),
    }
}

fn decode_answer(answer: Term, results: &[ValType], store: &StoreResource) -> Inbound {
    if let Ok((tag, values)) = answer.decode::<(Atom, Term)>() {
        if tag == crate::atoms::ok() {
            return match decode_args(values, results, store) {
                Ok(args) => Inbound::Answer(args),
                Err(e) => Inbound::Fail(format!(
                    "the handler returned {}: {}",
                    crate::inspect::inspect(values),
                    e.message
                )),
            };
        }
        if tag == crate::atoms::error() {
            let why = values
                .decode::<String>()
                .unwrap_or_else(|_| crate::inspect::inspect(values));
            return Inbound::Fail(why);
        }
    }
    Inbound::Fail(format!(
        "malformed answer {}",
        crate::inspect::inspect(answer)
    ))
}

/// Runs one caller operation for the innermost pending host call `id`.
/// `op` is `{:memory_read, memory, offset, len}`, `{:memory_write, memory,
/// offset, bytes}`, `{:memory_size, memory}`, `{:global_get, name}`,
/// `{:global_set, name, value}`, `{:fuel}` or `{:call, name, args}`.
#[rustler::nif]
fn caller_op<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    id: u64,
    op: Term<'a>,
) -> Term<'a> {
    let mut guard = match RunningGuard::lock(&store) {
        Ok(g) => g,
        Err(e) => return reply::<()>(env, Err(e)),
    };
    if let Err(e) = store.host.check_frame(id) {
        return reply::<()>(env, Err(e));
    }
    let op = match decode_op(env, op, &store, &mut guard) {
        Ok(op) => op,
        Err(e) => return reply::<()>(env, Err(e)),
    };
    store.host.deliver(Inbound::Op(op));
    drive_running(env, &store, &mut guard)
}

/// Runs an operation that completes without running guest code (a lookup)
/// and returns its result directly.
fn immediate(
    env: Env,
    store: &ResourceArc<StoreResource>,
    guard: &mut RunningGuard,
    op: Op,
) -> WbResult<OpResult> {
    store.host.deliver(Inbound::Op(op));
    guard.poll_for_op(env, store)
}

fn decode_op<'a>(
    env: Env<'a>,
    op: Term<'a>,
    store: &ResourceArc<StoreResource>,
    guard: &mut RunningGuard,
) -> WbResult<Op> {
    use crate::atoms as a;
    let bad = || {
        WbError::new(
            Kind::Argument,
            format!("unknown caller operation {}", crate::inspect::inspect(op)),
        )
    };
    let items = rustler::types::tuple::get_tuple(op).map_err(|_| bad())?;
    let tag: Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
    let text = |i: usize| -> WbResult<String> {
        items.get(i).ok_or_else(bad)?.decode().map_err(|_| bad())
    };
    let int =
        |i: usize| -> WbResult<u64> { items.get(i).ok_or_else(bad)?.decode().map_err(|_| bad()) };
    Ok(match (tag, items.len()) {
        (t, 4) if t == a::memory_read() => Op::MemoryRead {
            memory: text(1)?,
            offset: int(2)?,
            len: int(3)?,
        },
        (t, 4) if t == a::memory_write() => {
            let bytes: Binary = items[3].decode().map_err(|_| bad())?;
            Op::MemoryWrite {
                memory: text(1)?,
                offset: int(2)?,
                bytes: bytes.as_slice().to_vec(),
            }
        }
        (t, 2) if t == a::memory_size() => Op::MemorySize { memory: text(1)? },
        (t, 2) if t == a::global_get() => Op::GlobalGet { name: text(1)? },
        (t, 3) if t == a::global_set() => {
            let name = text(1)?;
            match immediate(env, store, guard, Op::GlobalType { name: name.clone() })? {
                OpResult::GlobalType(_, false) => {
                    return Err(WbError::new(Kind::Argument, "the global is immutable"))
                }
                OpResult::GlobalType(ty, true) => Op::GlobalSet {
                    name,
                    value: decode_arg(items[2], &ty, 0, store)?,
                },
                OpResult::Error(e) => return Err(e),
                _ => return Err(bad()),
            }
        }
        (t, 1) if t == a::fuel() => Op::Fuel,
        (t, 3) if t == a::call() => {
            let name = text(1)?;
            match immediate(env, store, guard, Op::ResolveFunc { name })? {
                OpResult::Func(func, sig) => Op::Call {
                    func,
                    args: decode_args(items[2], &sig.params, store)?,
                    results: sig.results.len(),
                },
                OpResult::Error(e) => return Err(e),
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    })
}
