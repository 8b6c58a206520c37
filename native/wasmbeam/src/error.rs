//! The one error type every NIF returns. It encodes itself as a
//! `%Wasmbeam.Error{}` struct so Elixir code never has to translate it.

use crate::atoms;
use rustler::{Atom, Encoder, Env, Term};
use wasmtime::{Trap, WasmBacktrace};

/// What went wrong, as an atom on the Elixir side.
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
    fn name(self) -> &'static str {
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

/// One frame of a Wasm backtrace.
#[derive(Debug, Clone)]
pub struct Frame {
    pub func_index: u32,
    pub func_name: Option<String>,
    pub module_offset: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct WbError {
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
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        WbError {
            kind,
            message: message.into(),
            trap: None,
            offset: None,
            backtrace: Vec::new(),
            exit_code: None,
        }
    }

    pub fn with_offset(mut self, offset: Option<usize>) -> Self {
        self.offset = offset;
        self
    }

    /// Classifies an error that came out of running guest code: a trap
    /// (with its code and backtrace), a timeout or exhausted fuel.
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
            (Kind::Timeout, "the call ran past its timeout".to_string())
        } else if trap == Some(Trap::OutOfFuel) {
            (
                Kind::OutOfFuel,
                "all fuel consumed by WebAssembly".to_string(),
            )
        } else {
            (Kind::Trap, chain_message(&err))
        };
        WbError {
            kind,
            message,
            trap: trap.map(trap_name),
            offset: None,
            backtrace,
            exit_code: None,
        }
    }
}

/// The full chain of an error's messages, outermost first, without the
/// backtrace (which is reported as structured frames instead).
pub fn chain_message(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.starts_with("error while executing at wasm backtrace") {
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
        _ => "other",
    }
}

impl Encoder for WbError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let frames: Vec<Term<'a>> = self
            .backtrace
            .iter()
            .map(|f| {
                Term::map_from_pairs(
                    env,
                    &[
                        (atoms::func_index().encode(env), f.func_index.encode(env)),
                        (atoms::func_name().encode(env), f.func_name.encode(env)),
                        (
                            atoms::module_offset().encode(env),
                            f.module_offset.encode(env),
                        ),
                    ],
                )
                .expect("distinct keys")
            })
            .collect();
        let trap: Term<'a> = match self.trap {
            Some(name) => Atom::from_str(env, name)
                .map(|a| a.encode(env))
                .unwrap_or_else(|_| atoms::nil().encode(env)),
            None => atoms::nil().encode(env),
        };
        let kind = Atom::from_str(env, self.kind.name()).expect("valid atom");
        let module = Atom::from_str(env, "Elixir.Wasmbeam.Error").expect("valid atom");
        Term::map_from_pairs(
            env,
            &[
                (atoms::__struct__().encode(env), module.encode(env)),
                (atoms::__exception__().encode(env), true.encode(env)),
                (atoms::kind().encode(env), kind.encode(env)),
                (atoms::message().encode(env), self.message.encode(env)),
                (atoms::trap().encode(env), trap),
                (atoms::offset().encode(env), self.offset.encode(env)),
                (atoms::backtrace().encode(env), frames.encode(env)),
                (atoms::exit_code().encode(env), self.exit_code.encode(env)),
            ],
        )
        .expect("distinct keys")
    }
}

/// `{:ok, value}` or `{:error, %Wasmbeam.Error{}}`.
pub fn reply<'a, T: Encoder>(env: Env<'a>, result: WbResult<T>) -> Term<'a> {
    match result {
        Ok(value) => (atoms::ok(), value).encode(env),
        Err(err) => (atoms::error(), err).encode(env),
    }
}

/// Runs `f`, turning a Rust panic into a `:panic` error instead of an
/// exception, so no input can take the caller down with a native fault.
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
