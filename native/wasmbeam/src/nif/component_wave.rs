//! WAVE, the WebAssembly Value Encoding: the text in which the Wasmtime
//! CLI's `--invoke` takes a component call (`add(1, 2)`,
//! `my:pkg/shapes#area({width: 2.0, height: 3.0})`) and prints its result.
//! A call written so becomes the export's path and its arguments as
//! Elixir terms (then called like any other call), and a result term
//! becomes WAVE text again: `mix wasmbeam.run --invoke` reads and writes
//! what `wasmtime run --invoke` does.

use crate::handle;
use crate::nif::component_values::{decode, encode, DecodeCx, Path};
use crate::nif::error::{guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::resources::atoms;
use crate::resources::component::ComponentInstanceResource;
use rustler::{Encoder, Env, Term};
use wasmbeam_runtime::domain::component::ItemPath;
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmtime::component::wasm_wave;
use wasmtime::component::{Type, Val};

/// Longer export names are not looked up (no export is named so).
const MAX_NAME: usize = 1024;

/// A text for a message, quoted: the first 80 characters of a long one.
fn shown(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// A parser's message, cut to 200 characters (it may quote the text).
fn shown_plain(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// `"name"` or `"interface#name"`.
fn export_path(name: &str) -> ItemPath {
    match name.rsplit_once('#') {
        Some((interface, name)) => ItemPath {
            interface: Some(interface.to_string()),
            name: name.to_string(),
        },
        None => ItemPath {
            interface: None,
            name: name.to_string(),
        },
    }
}

/// How deeply a WAVE text may nest (`[`, `(`, `{`): WIT types nest far
/// less. wasm-wave 0.254 bounds its own recursion at 100 levels as well;
/// this check keeps the bound if a later version drops it (the parser
/// recurses once per level).
const MAX_NESTING: usize = 100;

fn check_nesting(text: &str) -> WbResult<()> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    // Inside a string or char literal (its quote), and after a backslash.
    let (mut quote, mut escaped) = (None, false);
    for c in text.chars() {
        if let Some(q) = quote {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, c) if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(WbError::new(
            Kind::Argument,
            format!("the WAVE text nests {deepest} levels deep, more than {MAX_NESTING}"),
        ));
    }
    Ok(())
}

/// Parses `text`, a call in WAVE, against the parameter types of the
/// export it names: `{:ok, {interface | nil, name, arguments}}`. On a
/// dirty scheduler: a text may be large, and this is no hot path (the
/// command line, `iex`).
#[rustler::nif(schedule = "DirtyCpu")]
fn component_wave_call<'a>(
    env: Env<'a>,
    instance: Handle<ComponentInstanceResource>,
    text: String,
) -> Term<'a> {
    let instance = handle!(env, instance, "component instance");
    guarded(env, || {
        let result = (|| -> WbResult<Term<'a>> {
            check_nesting(&text)?;
            // The export's name is read here, so that it may name an
            // interface (`my:pkg/shapes#area`, which WAVE's own call syntax
            // has no token for); WAVE reads the arguments.
            let open = text.find('(').ok_or_else(|| {
                WbError::new(
                    Kind::Argument,
                    format!("{} is not a call: name(arg, ...)", shown(&text)),
                )
            })?;
            let name = text[..open].trim();
            if name.len() > MAX_NAME {
                return Err(WbError::new(
                    Kind::NotFound,
                    format!("no exported function {}", shown(name)),
                ));
            }
            let path = export_path(name);
            let arguments = format!("f{}", &text[open..]);
            let call = wasm_wave::untyped::UntypedFuncCall::parse(&arguments).map_err(|e| {
                WbError::new(
                    Kind::Argument,
                    format!(
                        "the arguments of {} are not WAVE: {}",
                        shown(&text),
                        shown_plain(&e.to_string())
                    ),
                )
            })?;
            let (_func, types) = instance.func(&path)?;
            let params: Vec<Type> = types.params.iter().map(|(_, t)| t.clone()).collect();
            let values: Vec<Val> = call.to_wasm_params::<Val>(params.iter()).map_err(|e| {
                let e = shown_plain(&e.to_string());
                WbError::new(Kind::Type, format!("the arguments of {path}: {e}"))
            })?;
            let args: Vec<Term> = values
                .iter()
                .zip(&params)
                .map(|(v, t)| encode(env, v, t, &instance.store))
                .collect();
            let interface = match &path.interface {
                Some(i) => i.encode(env),
                None => atoms::nil().encode(env),
            };
            Ok((interface, path.name.as_str(), args).encode(env))
        })();
        reply(env, result)
    })
}

/// The result `value` of the export at `interface`/`name` as WAVE text;
/// `nil` for a function without a result. On a dirty scheduler, as above.
#[rustler::nif(schedule = "DirtyCpu")]
fn component_wave_format<'a>(
    env: Env<'a>,
    instance: Handle<ComponentInstanceResource>,
    interface: Option<String>,
    name: String,
    value: Term<'a>,
) -> Term<'a> {
    let instance = handle!(env, instance, "component instance");
    guarded(env, || {
        let result = (|| -> WbResult<Option<String>> {
            let path = ItemPath { interface, name };
            let (_func, types) = instance.func(&path)?;
            let Some(ty) = types.result.as_ref() else {
                return Ok(None);
            };
            let mut cx = DecodeCx {
                store: &instance.store,
                moved: Vec::new(),
                host_answer: false,
                budget: None,
                too_heavy: false,
                inserted: Vec::new(),
            };
            let val = decode(value, ty, &mut Path::text("the result"), &mut cx)?;
            wasm_wave::to_string(&val).map(Some).map_err(|e| {
                WbError::new(
                    Kind::Argument,
                    format!("the result of {path} has no WAVE form: {e}"),
                )
            })
        })();
        reply(env, result)
    })
}
