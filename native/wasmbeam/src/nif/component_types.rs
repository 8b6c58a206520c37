//! A component's types as Elixir sees them: WIT text for `exports/1`,
//! `imports/1` and `Inspect`, and the atoms that name record fields,
//! variant and enum cases and flags.
//!
//! Atoms are made only here, when a component is compiled or loaded, from
//! the component's own types, and they are bounded: a component may bring
//! at most [`MAX_NEW_NAMES_PER_COMPONENT`] names that are not atoms yet, and
//! all components together at most [`MAX_NEW_NAMES`] (an atom is never
//! freed, and the VM stops when its atom table is full). Values are
//! encoded with atoms that exist already (`existing_atom`), so nothing a
//! guest returns at run time can make an atom.

use rustler::{Atom, Env};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::Type;

/// How many new atoms one component may add.
pub const MAX_NEW_NAMES_PER_COMPONENT: usize = 10_000;
/// How many new atoms all components together may add to the VM.
pub const MAX_NEW_NAMES: usize = 200_000;
/// How many type nodes are visited for one component (shared types are
/// visited once per use, so a hostile component could otherwise make the
/// walk exponential).
const MAX_TYPE_VISITS: usize = 2_000_000;
/// WIT text longer than this is cut (with an ellipsis).
const MAX_WIT_TEXT: usize = 16_384;

static NEW_NAMES: AtomicUsize = AtomicUsize::new(0);

/// The Elixir spelling of a WIT name: kebab-case becomes snake_case
/// (`user-id` -> `user_id`). WIT names never contain `_`, so this is
/// one-to-one.
pub fn elixir_name(wit: &str) -> String {
    wit.replace('-', "_")
}

/// The atom for a WIT name, if it exists (it does for every name of a
/// compiled component's types).
pub fn existing_atom(env: Env, wit: &str) -> Option<Atom> {
    // WIT names are ASCII, so Latin-1 and UTF-8 spell them alike.
    Atom::existing_from_bytes(env, elixir_name(wit).as_bytes()).ok()
}

/// Whether `atom` spells the WIT name `wit`.
pub fn atom_is(env: Env, atom: Atom, wit: &str) -> bool {
    match atom.to_term(env).atom_to_string() {
        Ok(s) => {
            s.len() == wit.len()
                && s.bytes()
                    .zip(wit.bytes())
                    .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
        }
        Err(_) => false,
    }
}

/// Makes an atom for every name in the types of `items` (a component's
/// imports and exports), within the bounds above.
pub fn make_name_atoms(
    env: Env,
    engine: &wasmtime::Engine,
    items: impl Iterator<Item = ComponentItem>,
) -> WbResult<()> {
    let mut names = std::collections::BTreeSet::new();
    let mut visits = 0usize;
    for item in items {
        collect_item(engine, &item, &mut names, &mut visits, 0)?;
    }
    let missing: Vec<String> = names
        .into_iter()
        .map(|n| elixir_name(&n))
        .filter(|n| Atom::existing_from_bytes(env, n.as_bytes()).is_err())
        .collect();
    // Everything is checked before anything is counted or made: a refused
    // component leaves no atom behind and takes nothing from the budget.
    if let Some(name) = missing.iter().find(|n| n.len() > 255) {
        return Err(limit(format!(
            "a type name of {} bytes cannot be an atom",
            name.len()
        )));
    }
    if missing.len() > MAX_NEW_NAMES_PER_COMPONENT {
        return Err(limit(format!(
            "the component's types bring {} new names; at most {MAX_NEW_NAMES_PER_COMPONENT} \
             may become atoms",
            missing.len()
        )));
    }
    let taken = NEW_NAMES.fetch_add(missing.len(), Ordering::Relaxed);
    if taken + missing.len() > MAX_NEW_NAMES {
        NEW_NAMES.fetch_sub(missing.len(), Ordering::Relaxed);
        return Err(limit(format!(
            "components have made {taken} atoms for their type names; {} more would pass \
             the limit of {MAX_NEW_NAMES}",
            missing.len()
        )));
    }
    for name in &missing {
        Atom::from_str(env, name).map_err(|_| limit(format!("cannot make an atom of {name:?}")))?;
    }
    Ok(())
}

fn limit(message: String) -> WbError {
    WbError::new(Kind::Limit, message)
}

fn visit(visits: &mut usize) -> WbResult<()> {
    *visits += 1;
    if *visits > MAX_TYPE_VISITS {
        return Err(limit(format!(
            "the component's types are too large to list (over {MAX_TYPE_VISITS} type nodes)"
        )));
    }
    Ok(())
}

fn collect_item(
    engine: &wasmtime::Engine,
    item: &ComponentItem,
    names: &mut std::collections::BTreeSet<String>,
    visits: &mut usize,
    depth: usize,
) -> WbResult<()> {
    visit(visits)?;
    if depth > 64 {
        return Err(limit("components are nested too deeply".into()));
    }
    match item {
        ComponentItem::ComponentFunc(f) => {
            for (_, ty) in f.params() {
                collect_type(&ty, names, visits)?;
            }
            for ty in f.results() {
                collect_type(&ty, names, visits)?;
            }
        }
        ComponentItem::ComponentInstance(i) => {
            for (_, item) in i.exports(engine) {
                collect_item(engine, &item.ty, names, visits, depth + 1)?;
            }
        }
        ComponentItem::Component(c) => {
            for (_, item) in c.imports(engine).chain(c.exports(engine)) {
                collect_item(engine, &item.ty, names, visits, depth + 1)?;
            }
        }
        ComponentItem::Type(ty) => collect_type(ty, names, visits)?,
        _ => {}
    }
    Ok(())
}

fn collect_type(
    ty: &Type,
    names: &mut std::collections::BTreeSet<String>,
    visits: &mut usize,
) -> WbResult<()> {
    visit(visits)?;
    match ty {
        Type::List(l) => collect_type(&l.ty(), names, visits)?,
        Type::FixedLengthList(l) => collect_type(&l.ty(), names, visits)?,
        Type::Map(m) => {
            collect_type(&m.key(), names, visits)?;
            collect_type(&m.value(), names, visits)?;
        }
        Type::Record(r) => {
            for field in r.fields() {
                names.insert(field.name.to_string());
                collect_type(&field.ty, names, visits)?;
            }
        }
        Type::Tuple(t) => {
            for ty in t.types() {
                collect_type(&ty, names, visits)?;
            }
        }
        Type::Variant(v) => {
            for case in v.cases() {
                names.insert(case.name.to_string());
                if let Some(ty) = case.ty {
                    collect_type(&ty, names, visits)?;
                }
            }
        }
        Type::Enum(e) => names.extend(e.names().map(str::to_string)),
        Type::Flags(f) => names.extend(f.names().map(str::to_string)),
        Type::Option(o) => collect_type(&o.ty(), names, visits)?,
        Type::Result(r) => {
            if let Some(ty) = r.ok() {
                collect_type(&ty, names, visits)?;
            }
            if let Some(ty) = r.err() {
                collect_type(&ty, names, visits)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// WIT text for a function type: `func(a: u32, b: string) -> list<u8>`.
pub fn func_wit(f: &ComponentFunc) -> String {
    let mut out = String::from("func(");
    for (i, (name, ty)) in f.params().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}: ");
        type_wit(&ty, &mut out);
    }
    out.push(')');
    for ty in f.results() {
        out.push_str(" -> ");
        type_wit(&ty, &mut out);
    }
    cut(out)
}

/// WIT text for a value type, structurally (a component keeps no names
/// for its types: a record prints as `record { x: u32 }`).
pub fn type_text(ty: &Type) -> String {
    let mut out = String::new();
    type_wit(ty, &mut out);
    cut(out)
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_WIT_TEXT {
        let mut end = MAX_WIT_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" …");
    }
    text
}

fn type_wit(ty: &Type, out: &mut String) {
    if out.len() > MAX_WIT_TEXT {
        return;
    }
    let simple = match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::ErrorContext => "error-context",
        _ => "",
    };
    if !simple.is_empty() {
        out.push_str(simple);
        return;
    }
    match ty {
        Type::List(l) => {
            out.push_str("list<");
            type_wit(&l.ty(), out);
            out.push('>');
        }
        Type::FixedLengthList(l) => {
            out.push_str("list<");
            type_wit(&l.ty(), out);
            let _ = write!(out, ", {}>", l.len());
        }
        Type::Map(m) => {
            out.push_str("map<");
            type_wit(&m.key(), out);
            out.push_str(", ");
            type_wit(&m.value(), out);
            out.push('>');
        }
        Type::Record(r) => {
            out.push_str("record { ");
            for (i, field) in r.fields().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", field.name);
                type_wit(&field.ty, out);
            }
            out.push_str(" }");
        }
        Type::Tuple(t) => {
            out.push_str("tuple<");
            for (i, ty) in t.types().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                type_wit(&ty, out);
            }
            out.push('>');
        }
        Type::Variant(v) => {
            out.push_str("variant { ");
            for (i, case) in v.cases().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(case.name);
                if let Some(ty) = case.ty {
                    out.push('(');
                    type_wit(&ty, out);
                    out.push(')');
                }
            }
            out.push_str(" }");
        }
        Type::Enum(e) => {
            let _ = write!(
                out,
                "enum {{ {} }}",
                e.names().collect::<Vec<_>>().join(", ")
            );
        }
        Type::Flags(f) => {
            let _ = write!(
                out,
                "flags {{ {} }}",
                f.names().collect::<Vec<_>>().join(", ")
            );
        }
        Type::Option(o) => {
            out.push_str("option<");
            type_wit(&o.ty(), out);
            out.push('>');
        }
        Type::Result(r) => {
            out.push_str("result");
            match (r.ok(), r.err()) {
                (None, None) => {}
                (Some(ok), None) => {
                    out.push('<');
                    type_wit(&ok, out);
                    out.push('>');
                }
                (ok, Some(err)) => {
                    out.push('<');
                    match ok {
                        Some(ok) => type_wit(&ok, out),
                        None => out.push('_'),
                    }
                    out.push_str(", ");
                    type_wit(&err, out);
                    out.push('>');
                }
            }
        }
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Future(f) => match f.ty() {
            Some(ty) => {
                out.push_str("future<");
                type_wit(&ty, out);
                out.push('>');
            }
            None => out.push_str("future"),
        },
        Type::Stream(s) => match s.ty() {
            Some(ty) => {
                out.push_str("stream<");
                type_wit(&ty, out);
                out.push('>');
            }
            None => out.push_str("stream"),
        },
        _ => {}
    }
}
