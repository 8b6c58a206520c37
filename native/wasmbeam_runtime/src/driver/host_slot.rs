//! The host slot: where host functions meet the process that drives a run.
//!
//! When the guest calls a host function implemented in Elixir, the host
//! future records the request in the store's [`HostShared`] slot and
//! returns `Pending`, which suspends the guest's fiber. The driver sees the
//! request after the poll ([`Pending::HostCall`]), the process runs the
//! handler and delivers the answer here, and the next poll resumes the
//! host future with it.
//!
//! While a host call is pending, its handler may act on the guest through
//! its caller: each operation ([`Op`]) is delivered the same way and
//! carried out by the suspended host future with its `wasmtime::Caller`.
//! Calling an export this way runs guest code nested inside the host call,
//! driven like any call. No thread ever waits.

use crate::driver::error::{chain_message, msg, HostCallFailed, Kind, WbError, WbResult};
use crate::driver::values::{arg_to_val, val_to_out, Arg, Args, FuncSig, Out, Outs};
use parking_lot::Mutex;
use std::any::Any;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use wasmtime::component::types::ComponentFunc;
use wasmtime::component::{
    ResourceDynamic, ResourceType, Type as ComponentType, Val as ComponentVal,
};
use wasmtime::{Caller, Extern, Func, StoreContextMut, Val, ValType};

/// How many host calls may be pending inside one another (guest -> host
/// -> `Caller.call` -> guest -> host ...) before a further `Caller.call`
/// is refused with a `:limit` error. Each level makes every later poll
/// resume one more fiber, so a chain's cost grows with the square of its
/// depth (100 levels: about 6 ms in all; 400: 95 ms; 1,440: seconds, and as
/// long to cancel); the limit keeps a chain, its deadline and its
/// cancellation within milliseconds.
pub const MAX_NESTED_HOST_CALLS: usize = 100;

/// What a store's data must offer the host slot.
pub trait HostData: Send + 'static {
    fn host(&self) -> &HostShared;
    /// The call's deadline passed (set by the epoch callback).
    fn timed_out(&self) -> bool;
    /// Checks the call's deadline against the clock now (a host call may
    /// have run past it without an epoch check); marks the call timed out.
    fn deadline_passed(&mut self) -> bool;
    /// A call made through a caller ran out of fuel.
    fn nested_out_of_fuel(&self) -> bool;
    fn set_nested_out_of_fuel(&mut self);
}

/// Why a handler's answer is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The handler raised, threw, exited, timed out or answered `{:error, _}`.
    Handler,
    /// The handler answered values that do not fit the import's results.
    BadAnswer,
}

#[derive(Debug, Clone)]
pub struct HandlerFailure {
    pub cause: FailureCause,
    pub why: String,
}

/// A handler's answer, decoded against the import's result types.
pub enum Answer {
    Values(Args),
    /// A component import's answer: its result, if its type has one.
    Component(Option<ComponentVal>),
    Failed(HandlerFailure),
}

/// What a host call's answer must look like.
pub enum ResultTypes {
    /// A core import's result types.
    Core(Arc<[ValType]>),
    /// A component import's result type (a component function has at
    /// most one result).
    Component(Option<ComponentType>),
}

/// The arguments of a host call, as the guest passed them.
pub enum HostArgs {
    Core(Outs),
    /// A component import's arguments, with their types, and which of
    /// them are resources the host defined (`index`, `owned`): those are
    /// `U32` values holding the resource's representation, which names the
    /// handler's state in the NIF crate's table.
    Component(Vec<ComponentVal>, Arc<[ComponentType]>, Vec<(usize, bool)>),
}

/// What the suspended host future is told.
enum Inbound {
    Answer(Answer),
    Op(Op),
}

/// What a handler can ask of the guest through its caller.
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
    Func(Func, Arc<FuncSig>),
    Error(WbError),
}

/// A host call the guest made, waiting for the driver to pick it up: which
/// handler (registry and index) to run with which arguments.
pub struct HostRequest {
    pub id: u64,
    pub registry: u64,
    pub index: usize,
    pub args: HostArgs,
}

/// What a host function's calls need to know: whose handler to run, and
/// what its answer must look like. Cloned into every call's future: one
/// reference count, since atomic operations are a large share of a host
/// call's cost.
#[derive(Clone)]
pub struct HostImport(Arc<ImportInfo>);

struct ImportInfo {
    /// The registry that holds the handler, kept alive by the import (the
    /// NIF crate's handler registry; opaque here).
    registry: Arc<dyn Any + Send + Sync>,
    registry_id: u64,
    index: usize,
    name: Arc<str>,
    results: ResultTypes,
}

impl HostImport {
    pub fn new(
        registry: Arc<dyn Any + Send + Sync>,
        registry_id: u64,
        index: usize,
        name: &str,
        results: &[ValType],
    ) -> HostImport {
        HostImport::with_results(
            registry,
            registry_id,
            index,
            name,
            ResultTypes::Core(Arc::from(results)),
        )
    }

    /// An import whose answer is decoded against `results`: a component
    /// import's result type, or a core import's result types.
    pub fn with_results(
        registry: Arc<dyn Any + Send + Sync>,
        registry_id: u64,
        index: usize,
        name: &str,
        results: ResultTypes,
    ) -> HostImport {
        HostImport(Arc::new(ImportInfo {
            registry,
            registry_id,
            index,
            name: Arc::from(name),
            results,
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
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
pub enum FrameStatus {
    /// It was innermost and waiting: the answer has been delivered.
    Delivered,
    /// Still busy with a nested call made through its caller, or waiting
    /// behind a nested host call: the answer cannot be delivered. With
    /// the import's name and the decoded answer.
    Blocked(Arc<str>, Answer),
    /// The decoder declined the answer: nothing changed.
    Declined,
    Gone,
}

#[derive(Default)]
struct Slot {
    outgoing: Option<HostRequest>,
    incoming: Option<Inbound>,
    op_result: Option<OpResult>,
    frames: Vec<Frame>,
}

/// What the driver finds after a poll that returned `Pending`.
pub enum Pending {
    HostCall(HostRequest),
    OpDone(OpResult),
    Yielded,
}

/// Shared by a store and its store's data.
pub struct HostShared {
    slot: Mutex<Slot>,
    cancel: Arc<AtomicBool>,
    next_id: AtomicU64,
    /// Set when a host call used the slot since the last reset.
    used: AtomicBool,
}

impl HostShared {
    pub fn new(cancel: Arc<AtomicBool>) -> HostShared {
        HostShared {
            slot: Mutex::new(Slot::default()),
            cancel,
            next_id: AtomicU64::new(1),
            used: AtomicBool::new(false),
        }
    }

    #[inline]
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
    #[inline]
    pub fn reset(&self) {
        // Most runs make no host call: skip the lock (and any locked
        // instruction) for them.
        if self.used.load(Ordering::Acquire) && self.used.swap(false, Ordering::AcqRel) {
            let mut slot = self.slot.lock();
            slot.outgoing = None;
            slot.incoming = None;
            slot.op_result = None;
            // Keep the allocation for the next run's host calls.
            slot.frames.clear();
        }
    }

    /// Checks that `id` is the innermost pending host call.
    pub fn check_frame(&self, id: u64) -> WbResult<()> {
        let slot = self.slot.lock();
        match slot.frames.last() {
            Some(frame) if frame.id == id => Ok(()),
            _ if !slot.frames.iter().any(|f| f.id == id) => {
                Err(WbError::new(Kind::Argument, msg::CALLER_GONE))
            }
            _ => Err(WbError::new(
                Kind::Busy,
                "another host call is in progress inside this one; use its caller",
            )),
        }
    }

    /// The handler registry of pending host call `id`.
    pub fn registry_of(&self, id: u64) -> Option<Arc<dyn Any + Send + Sync>> {
        let slot = self.slot.lock();
        let frame = slot.frames.iter().rev().find(|f| f.id == id)?;
        Some(frame.import.0.registry.clone())
    }

    /// Hands an operation to the innermost host call (checked with
    /// [`HostShared::check_frame`]); the next poll carries it out.
    pub fn deliver_op(&self, op: Op) {
        let mut slot = self.slot.lock();
        if let Some(frame) = slot.frames.last_mut() {
            frame.in_op = true;
        }
        slot.incoming = Some(Inbound::Op(op));
    }

    /// Delivers the answer to host call `id` if it is the innermost one
    /// and waiting (one lock for the check and the delivery; `decode`
    /// turns the answer into what the host future receives, given the
    /// result types).
    pub fn answer(&self, id: u64, decode: impl FnOnce(&ResultTypes) -> Answer) -> FrameStatus {
        self.answer_unless(id, |results| Some(decode(results)))
    }

    /// Like [`answer`](Self::answer), but `decode` may decline (`None`,
    /// say an answer too large to decode on a normal scheduler): nothing
    /// is delivered and the host call waits on (`Declined`).
    pub fn answer_unless(
        &self,
        id: u64,
        decode: impl FnOnce(&ResultTypes) -> Option<Answer>,
    ) -> FrameStatus {
        let mut slot = self.slot.lock();
        let Some(i) = slot.frames.iter().rposition(|f| f.id == id) else {
            return FrameStatus::Gone;
        };
        let frame = &slot.frames[i];
        let blocked = i + 1 != slot.frames.len() || frame.in_op;
        let Some(answer) = decode(&frame.import.0.results) else {
            return FrameStatus::Declined;
        };
        if blocked {
            return FrameStatus::Blocked(frame.import.0.name.clone(), answer);
        }
        slot.incoming = Some(Inbound::Answer(answer));
        FrameStatus::Delivered
    }
}

/// Where a host call is made from: what the host slot needs of it (the
/// store's data, and the operations a handler may ask for through its
/// caller). A core module's host function has a `wasmtime::Caller`; a
/// component's has only its store, since a component shares no memory,
/// globals or functions with its host and may not be re-entered.
pub trait HostContext<T: HostData>: Send {
    fn host_data(&self) -> &T;
    fn host_data_mut(&mut self) -> &mut T;
    /// Carries out `op` for the handler (boxed: a nested call's future is
    /// large, and without the box every host call would carry its space).
    fn run_op(&mut self, op: Op) -> Pin<Box<dyn Future<Output = OpResult> + Send + '_>>;
}

impl<T: HostData> HostContext<T> for Caller<'_, T> {
    #[inline]
    fn host_data(&self) -> &T {
        self.data()
    }
    #[inline]
    fn host_data_mut(&mut self) -> &mut T {
        self.data_mut()
    }
    fn run_op(&mut self, op: Op) -> Pin<Box<dyn Future<Output = OpResult> + Send + '_>> {
        Box::pin(run_op(self, op))
    }
}

impl<T: HostData> HostContext<T> for StoreContextMut<'_, T> {
    #[inline]
    fn host_data(&self) -> &T {
        self.data()
    }
    #[inline]
    fn host_data_mut(&mut self) -> &mut T {
        self.data_mut()
    }
    fn run_op(&mut self, op: Op) -> Pin<Box<dyn Future<Output = OpResult> + Send + '_>> {
        let result = match op {
            Op::Fuel => match self.get_fuel() {
                Ok(fuel) => OpResult::Fuel(fuel),
                Err(_) => OpResult::Error(WbError::fuel_disabled()),
            },
            _ => OpResult::Error(WbError::new(
                Kind::Argument,
                "a component's host function cannot reach into its guest: a component \
                 shares no memory, globals or functions with its host, and may not be \
                 called again while it waits for its host",
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

/// The body of host functions whose signatures have no typed path:
/// [`call_handler`] with Wasmtime's `Val`s.
pub async fn host_call<T: HostData>(
    mut caller: Caller<'_, T>,
    params: &[Val],
    out: &mut [Val],
    import: HostImport,
) -> wasmtime::Result<()> {
    let args: Outs = params.iter().map(|v| val_to_out(*v, &mut caller)).collect();
    let values = call_handler(&mut caller, args, import.clone()).await?;
    for (slot, arg) in out.iter_mut().zip(values) {
        *slot = arg_to_val(arg, &mut caller).map_err(|e| {
            wasmtime::Error::new(HostCallFailed(format!(
                "host function {}: {}",
                import.0.name,
                chain_message(&e)
            )))
        })?;
    }
    Ok(())
}

/// The body of a component's host functions: the guest's arguments go to
/// the handler as they are, and its answer (decoded against the import's
/// result type by the NIF) is the result. Resources the host defined
/// (`ResourceType::host_dynamic` with one of `host_types`) go to the
/// handler as their representation, and a `U32` answer where the result
/// is such a resource is the representation of a new one.
pub async fn component_host_call<T: HostData>(
    mut store: StoreContextMut<'_, T>,
    func: ComponentFunc,
    params: &[ComponentVal],
    types: Arc<[ComponentType]>,
    out: &mut [ComponentVal],
    import: HostImport,
    host_types: Arc<[u32]>,
) -> wasmtime::Result<()> {
    let mut values = params.to_vec();
    let mut host = Vec::new();
    if !host_types.is_empty() {
        for (i, value) in values.iter_mut().enumerate() {
            if let ComponentVal::Resource(r) = value {
                if host_types
                    .iter()
                    .any(|t| r.ty() == ResourceType::host_dynamic(*t))
                {
                    let owned = r.owned();
                    let rep = ResourceDynamic::try_from_resource_any(*r, &mut store)?.rep();
                    *value = ComponentVal::U32(rep);
                    host.push((i, owned));
                }
            }
        }
    }
    let answer = wait_for_answer(
        &mut store,
        HostArgs::Component(values, types, host),
        import.clone(),
    )
    .await?;
    let misfit = || {
        wasmtime::Error::new(HostCallFailed(format!(
            "host function {}: the answer does not fit the function's result",
            import.0.name
        )))
    };
    match (answer, out.first_mut()) {
        (Answer::Component(Some(value)), Some(slot)) => {
            let host_result = match func.results().next() {
                Some(ComponentType::Own(rt)) => host_types
                    .iter()
                    .copied()
                    .find(|t| rt == ResourceType::host_dynamic(*t)),
                _ => None,
            };
            *slot = match (host_result, value) {
                (Some(t), ComponentVal::U32(rep)) => ComponentVal::Resource(
                    ResourceDynamic::new_own(rep, t).try_into_resource_any(&mut store)?,
                ),
                (Some(_), _) => return Err(misfit()),
                (None, value) => value,
            };
        }
        (Answer::Component(None), None) => {}
        _ => return Err(misfit()),
    }
    Ok(())
}

/// The destructor of a resource the host defined: its handler gets the
/// resource's state (the NIF takes it out of its table).
pub async fn host_resource_drop<T: HostData>(
    mut store: StoreContextMut<'_, T>,
    rep: u32,
    import: HostImport,
) -> wasmtime::Result<()> {
    let args = HostArgs::Component(
        vec![ComponentVal::U32(rep)],
        Arc::from([ComponentType::U32]),
        vec![(0, true)],
    );
    wait_for_answer(&mut store, args, import).await.map(|_| ())
}

/// Hands a host call to the driving process through the store's host slot
/// and waits for the answer: the results, decoded against the import's
/// result types.
#[inline]
pub async fn call_handler<T: HostData>(
    caller: &mut Caller<'_, T>,
    args: Outs,
    import: HostImport,
) -> wasmtime::Result<Args> {
    match wait_for_answer(caller, HostArgs::Core(args), import).await? {
        Answer::Values(values) => Ok(values),
        _ => Err(wasmtime::Error::new(HostCallFailed(
            "a core host function got an answer of another kind".into(),
        ))),
    }
}

/// Posts the request in the host slot and serves the handler until it
/// answers (values or a component value, never `Failed`: a failure is the
/// error).
async fn wait_for_answer<T: HostData, C: HostContext<T>>(
    caller: &mut C,
    args: HostArgs,
    import: HostImport,
) -> wasmtime::Result<Answer> {
    let id = {
        let shared = caller.host_data().host();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        shared.used.store(true, Ordering::Release);
        let mut slot = shared.slot.lock();
        slot.outgoing = Some(HostRequest {
            id,
            registry: import.0.registry_id,
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
    if caller.host_data_mut().deadline_passed() {
        // The handler answered (or failed) after the call's deadline: the
        // call timed out, whatever the answer; no result that came late is
        // reported as a success.
        return Err(wasmtime::Error::msg(msg::TIMEOUT));
    }
    let data = caller.host_data();
    if outcome.is_ok() && data.nested_out_of_fuel() {
        // A call made through the caller used up the fuel: the whole call
        // is out of it, as it would be had the guest made that call itself.
        return Err(wasmtime::Trap::OutOfFuel.into());
    }
    outcome.map_err(|(name, why)| {
        wasmtime::Error::new(HostCallFailed(format!("host function {name}: {why}")))
    })
}

/// What wakes a waiting host call.
enum Woken {
    Op(Op),
    Answer(Answer),
    /// The handler failed, or the call was cancelled; with the popped frame.
    Failed(Option<Frame>, String),
}

/// Waits for the answer, carrying out the caller operations that arrive
/// before it; the host call's frame is gone when this returns. A failure
/// comes with the import's name.
async fn serve<T: HostData, C: HostContext<T>>(
    caller: &mut C,
    id: u64,
) -> Result<Answer, (Arc<str>, String)> {
    loop {
        // The first poll cannot find anything: the driver has not even
        // seen the request (or the operation's result) yet.
        let mut first = true;
        let woken = {
            let shared = caller.host_data().host();
            poll_fn(|_| {
                if std::mem::take(&mut first) {
                    return Poll::Pending;
                }
                let mut slot = shared.slot.lock();
                if shared.cancel.load(Ordering::Relaxed) {
                    let frame = slot.frames.pop();
                    return Poll::Ready(Woken::Failed(frame, msg::CANCELLED.into()));
                }
                // The frame is popped under the same lock as the answer is taken.
                match slot.incoming.take() {
                    Some(Inbound::Op(op)) => Poll::Ready(Woken::Op(op)),
                    Some(Inbound::Answer(Answer::Failed(f))) => {
                        Poll::Ready(Woken::Failed(slot.frames.pop(), f.why))
                    }
                    Some(Inbound::Answer(answer)) => {
                        slot.frames.pop();
                        Poll::Ready(Woken::Answer(answer))
                    }
                    None => Poll::Pending,
                }
            })
            .await
        };
        match woken {
            Woken::Answer(answer) => return Ok(answer),
            Woken::Failed(frame, why) => {
                let name = frame.map_or_else(|| Arc::from("?"), |f| f.import.0.name.clone());
                return Err((name, why));
            }
            Woken::Op(op) => {
                let result = caller.run_op(op).await;
                let mut slot = caller.host_data().host().slot.lock();
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

async fn run_op<T: HostData>(caller: &mut Caller<'_, T>, op: Op) -> OpResult {
    use crate::driver::memory::range;
    match op {
        Op::MemoryRead {
            memory,
            offset,
            len,
        } => match caller.get_export(&memory) {
            Some(Extern::Memory(m)) => {
                let data = m.data(&*caller);
                match range(offset, len, data.len()) {
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
                match range(offset, bytes.len() as u64, data.len()) {
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
            Err(_) => OpResult::Error(WbError::fuel_disabled()),
        },
        Op::ResolveFunc { name } => match caller.get_export(&name) {
            Some(Extern::Func(f)) => {
                let sig = Arc::new(FuncSig::of(&f, &*caller));
                OpResult::Func(f, sig)
            }
            _ => not_found("function", &name),
        },
        Op::Call {
            func,
            args,
            results,
        } => {
            let depth = caller.data().host().slot.lock().frames.len();
            if depth >= MAX_NESTED_HOST_CALLS {
                return OpResult::Error(WbError::new(
                    Kind::Limit,
                    format!(
                        "calls through a caller are nested {depth} host calls deep; \
                         the limit is {MAX_NESTED_HOST_CALLS}"
                    ),
                ));
            }
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
                        caller.data_mut().set_nested_out_of_fuel();
                    }
                    let timed_out = caller.data().timed_out();
                    OpResult::Error(WbError::from_run(e, timed_out))
                }
            }
        }
    }
}
