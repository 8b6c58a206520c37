//! Errors as terms: every NIF answers `{:ok, value}` or
//! `{:error, %Wasmbeam.Error{}}`, and never raises, panics included.

use crate::resources::atoms;
use rustler::{Atom, Encoder, Env, Term};
use wasmbeam_runtime::driver::error::{panic_message, Kind, WbError, WbResult};

/// `%Wasmbeam.Error{}` for `err`.
#[cold]
pub fn encode_error<'a>(env: Env<'a>, err: &WbError) -> Term<'a> {
    let frames: Vec<Term<'a>> = err
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
    let trap: Term<'a> = match err.trap {
        Some(name) => Atom::from_str(env, name)
            .map(|a| a.encode(env))
            .unwrap_or_else(|_| atoms::nil().encode(env)),
        None => atoms::nil().encode(env),
    };
    let kind = Atom::from_str(env, err.kind.name()).expect("valid atom");
    let module = Atom::from_str(env, "Elixir.Wasmbeam.Error").expect("valid atom");
    Term::map_from_pairs(
        env,
        &[
            (atoms::__struct__().encode(env), module.encode(env)),
            (atoms::__exception__().encode(env), true.encode(env)),
            (atoms::kind().encode(env), kind.encode(env)),
            (atoms::message().encode(env), err.message.encode(env)),
            (atoms::trap().encode(env), trap),
            (atoms::offset().encode(env), err.offset.encode(env)),
            (atoms::backtrace().encode(env), frames.encode(env)),
            (atoms::exit_code().encode(env), err.exit_code.encode(env)),
        ],
    )
    .expect("distinct keys")
}

/// `{:error, %Wasmbeam.Error{}}`.
#[cold]
pub fn error<'a>(env: Env<'a>, err: &WbError) -> Term<'a> {
    (atoms::error(), encode_error(env, err)).encode(env)
}

/// `{:ok, value}` or `{:error, %Wasmbeam.Error{}}`.
#[inline]
pub fn reply<'a, T: Encoder>(env: Env<'a>, result: WbResult<T>) -> Term<'a> {
    match result {
        Ok(value) => (atoms::ok(), value).encode(env),
        Err(err) => error(env, &err),
    }
}

/// Runs a NIF's body, turning a Rust panic into `{:error, %Wasmbeam.Error{kind: :panic}}`
/// instead of an exception: no input may make a NIF raise.
#[inline(always)]
pub fn guarded<'a>(env: Env<'a>, body: impl FnOnce() -> Term<'a>) -> Term<'a> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(term) => term,
        Err(payload) => error(env, &WbError::new(Kind::Panic, panic_message(&payload))),
    }
}

/// A bad argument term, shown as Elixir shows it.
pub fn bad_term(what: &str, term: Term) -> WbError {
    WbError::new(
        Kind::Argument,
        format!("{what}: {}", crate::nif::inspect::inspect(term)),
    )
}

/// The kinds native code can give an error, as atoms: the test suite checks
/// that `Wasmbeam.Error` knows each of them.
#[rustler::nif]
fn error_kinds(env: Env) -> Vec<Atom> {
    Kind::ALL
        .iter()
        .map(|k| Atom::from_str(env, k.name()).expect("valid atom"))
        .collect()
}
