//! The one error type of the native code, and how errors are classified.
//!
//! Kinds are decided from types, never from the wording of another
//! library's messages: a Wasmtime upgrade cannot change a kind.

use wasmtime::{Trap, WasmBacktrace};

/// What went wrong, as an atom on the Elixir side (`Wasmbeam.Error.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Parse,
    Validation,
    Compile,
    Link,
    Trap,
    Timeout,
    OutOfFuel,
    Arity,
    Type,
    NotFound,
    Argument,
    Busy,
    Deserialize,
    Limit,
    Panic,
    Poisoned,
    Exit,
}

impl Kind {
    /// Every kind, for codecs and tests that must cover them all.
    pub const ALL: [Kind; 17] = [
        Kind::Parse,
        Kind::Validation,
        Kind::Compile,
        Kind::Link,
        Kind::Trap,
        Kind::Timeout,
        Kind::OutOfFuel,
        Kind::Arity,
        Kind::Type,
        Kind::NotFound,
        Kind::Argument,
        Kind::Busy,
        Kind::Deserialize,
        Kind::Limit,
        Kind::Panic,
        Kind::Poisoned,
        Kind::Exit,
    ];

    /// The kind's name: the atom Elixir sees.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Parse => "parse",
            Kind::Validation => "validation",
            Kind::Compile => "compile",
            Kind::Link => "link",
            Kind::Trap => "trap",
            Kind::Timeout => "timeout",
            Kind::OutOfFuel => "out_of_fuel",
            Kind::Arity => "arity",
            Kind::Type => "type",
            Kind::NotFound => "not_found",
            Kind::Argument => "argument",
            Kind::Busy => "busy",
            Kind::Deserialize => "deserialize",
            Kind::Limit => "limit",
            Kind::Panic => "panic",
            Kind::Poisoned => "poisoned",
            Kind::Exit => "exit",
        }
    }
}

/// Messages written in more than one place, written once.
pub mod msg {
    pub const TIMEOUT: &str = "the call ran past its timeout";
    pub const CANCELLED: &str = "the call was cancelled";
    pub const CANNOT_ENTER_COMPONENT: &str =
        "the component instance trapped in an earlier call and cannot be entered again \
         (the component model forbids it: its state may be broken); instantiate the \
         component again";
    pub const FUEL_DISABLED: &str = "fuel needs an engine created with consume_fuel: true";
    pub const TIMEOUT_DISABLED: &str =
        "timeout needs an engine created with epoch_interruption: true";
    pub const BUSY: &str =
        "a call is already running on this store (a store runs one call at a time)";
    pub const CALLER_GONE: &str = "the host call this caller belongs to has returned";
    pub const OTHER_ENGINE: &str = "was made by another engine than the store's";
    pub const NOT_STOPPABLE: &str = "a call on this store was cancelled and could not be stopped";
}

/// One frame of a Wasm backtrace.
#[derive(Debug, Clone)]
pub struct Frame {
    pub func_index: u32,
    pub func_name: Option<String>,
    pub module_offset: Option<usize>,
}

/// An error, boxed: results that carry one stay two words wide, so the
/// call path moves no error-sized values around when nothing failed.
#[derive(Debug, Clone)]
pub struct WbError(Box<ErrorDetail>);

/// What an error says (read through [`WbError`]'s `Deref`).
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    pub kind: Kind,
    pub message: String,
    pub trap: Option<&'static str>,
    pub offset: Option<usize>,
    pub backtrace: Vec<Frame>,
    /// The status a WASI program passed to `proc_exit` (kind `Exit`).
    pub exit_code: Option<i32>,
}

pub type WbResult<T> = Result<T, WbError>;

impl WbError {
    #[cold]
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        WbError(Box::new(ErrorDetail {
            kind,
            message: message.into(),
            trap: None,
            offset: None,
            backtrace: Vec::new(),
            exit_code: None,
        }))
    }

    /// The message alone.
    pub fn into_message(self) -> String {
        self.0.message
    }

    pub fn with_offset(mut self, offset: Option<usize>) -> Self {
        self.offset = offset;
        self
    }

    pub fn busy() -> Self {
        WbError::new(Kind::Busy, msg::BUSY)
    }

    pub fn poisoned(why: &str) -> Self {
        WbError::new(
            Kind::Poisoned,
            format!("the store is unusable and must be recreated: {why}"),
        )
    }

    pub fn fuel_disabled() -> Self {
        WbError::new(Kind::Argument, msg::FUEL_DISABLED)
    }

    /// Classifies an error that came out of running guest code: a trap
    /// (with its code and backtrace), a timeout, exhausted fuel or a WASI
    /// program's exit.
    pub fn from_run(err: wasmtime::Error, timed_out: bool) -> Self {
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            let mut e = WbError::new(
                Kind::Exit,
                format!("the program exited with status {}", exit.0),
            );
            e.exit_code = Some(exit.0);
            return e;
        }
        let trap = err.downcast_ref::<Trap>().copied();
        let backtrace = err
            .downcast_ref::<WasmBacktrace>()
            .map(|bt| {
                bt.frames()
                    .iter()
                    .map(|f| Frame {
                        func_index: f.func_index(),
                        func_name: f.func_name().map(str::to_owned),
                        module_offset: f.module_offset(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (kind, message) = if timed_out {
            (Kind::Timeout, msg::TIMEOUT.to_string())
        } else if trap == Some(Trap::OutOfFuel) {
            (
                Kind::OutOfFuel,
                "all fuel consumed by WebAssembly".to_string(),
            )
        } else if trap == Some(Trap::CannotEnterComponent) {
            (Kind::Trap, msg::CANNOT_ENTER_COMPONENT.to_string())
        } else {
            (Kind::Trap, chain_message(&err))
        };
        WbError(Box::new(ErrorDetail {
            kind,
            message,
            trap: trap.map(trap_name),
            offset: None,
            backtrace,
            exit_code: None,
        }))
    }
}

impl std::ops::Deref for WbError {
    type Target = ErrorDetail;
    fn deref(&self) -> &ErrorDetail {
        &self.0
    }
}

impl std::ops::DerefMut for WbError {
    fn deref_mut(&mut self) -> &mut ErrorDetail {
        &mut self.0
    }
}

/// A host call that failed (its handler failed or answered wrongly, or the
/// call was cancelled): guest code ran, so the run's error is a trap,
/// whether or not Wasmtime attached a backtrace.
#[derive(Debug)]
pub struct HostCallFailed(pub String);

impl std::fmt::Display for HostCallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostCallFailed {}

/// A call into a component failed while values crossed to or from the
/// guest (its `realloc` answered a pointer out of bounds, it returned a
/// string that is not UTF-8, it copied too much): the guest's fault, so
/// the call's error is a trap, though no guest instruction trapped.
#[derive(Debug)]
pub struct GuestFault;

impl std::fmt::Display for GuestFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the guest's values could not cross into or out of the component")
    }
}

impl std::error::Error for GuestFault {}

impl GuestFault {
    /// Marks an error of a component call that is not already known as
    /// one of guest code.
    pub fn mark(err: wasmtime::Error) -> wasmtime::Error {
        if ran_guest_code(&err) {
            err
        } else {
            err.context(GuestFault)
        }
    }
}

/// Whether an error came from running guest code (as opposed to setting a
/// run up: linking, allocating).
pub fn ran_guest_code(err: &wasmtime::Error) -> bool {
    err.downcast_ref::<GuestFault>().is_some()
        || err.downcast_ref::<Trap>().is_some()
        || err.downcast_ref::<HostCallFailed>().is_some()
        || err.downcast_ref::<WasmBacktrace>().is_some()
        || err.downcast_ref::<wasmtime_wasi::I32Exit>().is_some()
}

/// The full chain of an error's messages, outermost first, without the
/// backtrace (which is reported as structured frames instead). The
/// backtrace is recognised by comparing with its own rendering, not by
/// its wording.
pub fn chain_message(err: &wasmtime::Error) -> String {
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if backtrace.as_deref() == Some(text.as_str()) {
            continue;
        }
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn trap_name(trap: Trap) -> &'static str {
    match trap {
        Trap::StackOverflow => "stack_overflow",
        Trap::MemoryOutOfBounds => "memory_out_of_bounds",
        Trap::HeapMisaligned => "heap_misaligned",
        Trap::TableOutOfBounds => "table_out_of_bounds",
        Trap::IndirectCallToNull => "indirect_call_to_null",
        Trap::BadSignature => "bad_signature",
        Trap::IntegerOverflow => "integer_overflow",
        Trap::IntegerDivisionByZero => "integer_division_by_zero",
        Trap::BadConversionToInteger => "bad_conversion_to_integer",
        Trap::UnreachableCodeReached => "unreachable",
        Trap::Interrupt => "interrupt",
        Trap::OutOfFuel => "out_of_fuel",
        Trap::AtomicWaitNonSharedMemory => "atomic_wait_non_shared_memory",
        Trap::NullReference => "null_reference",
        Trap::ArrayOutOfBounds => "array_out_of_bounds",
        Trap::AllocationTooLarge => "allocation_too_large",
        Trap::CastFailure => "cast_failure",
        Trap::CannotEnterComponent => "cannot_enter_component",
        _ => "other",
    }
}

/// Runs `f`, turning a Rust panic into a `:panic` error, so that no input
/// can take the caller down with a native fault.
pub fn guard<T>(f: impl FnOnce() -> WbResult<T>) -> WbResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(WbError::new(Kind::Panic, panic_message(&payload))),
    }
}

pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("native panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("native panic: {s}")
    } else {
        "native panic".to_string()
    }
}
