//! Component values and Elixir terms, both ways, checked against the
//! component's types. The mapping (documented in `Wasmbeam.Component`):
//!
//! | WIT | Elixir |
//! |---|---|
//! | `bool` | `true` / `false` |
//! | `s8`..`u64` | integers, range-checked |
//! | `f32`, `f64` | as core values: floats, `:infinity`, `:neg_infinity`, `:nan`, `{:nan, bits}` |
//! | `char` | a one-character string (an integer code point is accepted) |
//! | `string` | a UTF-8 binary |
//! | `list<u8>` | a binary (a list of bytes is accepted) |
//! | `list<T>`, `list<T, N>` | a list |
//! | `tuple<...>` | a tuple |
//! | `record` | a map with snake_case atom keys (string keys accepted) |
//! | `enum` | an atom |
//! | `variant` | `case` or `{case, payload}` |
//! | `flags` | a list of atoms |
//! | `option<T>` | `:none` or `{:some, value}` |
//! | `result<T, E>` | `{:ok, value}` / `:ok`, `{:error, value}` / `:error` |
//! | `own<R>`, `borrow<R>` | a `%Wasmbeam.Component.Resource{}` |
//!
//! Names become atoms only when a component is compiled (see
//! `component_types`); encoding uses existing atoms.

use crate::nif::component_types::{atom_is, elixir_name, existing_atom, type_text};
use crate::nif::inspect::inspect;
use crate::nif::values::{decode_f32, decode_f64_bits, encode_f32, encode_f64};
use crate::resources::atoms;
use crate::resources::component::GuestResource;
use crate::resources::store::StoreResource;
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Binary, Encoder, Env, NewBinary, ResourceArc, Term, TermType};
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmtime::component::{Type, Val};

/// Where in an argument a value sits, for error messages:
/// `argument 1 (shape).rect.0`. The root is kept unformatted, so a call
/// whose arguments are right formats nothing.
pub struct Path<'n> {
    root: Root<'n>,
    segments: Vec<String>,
}

enum Root<'n> {
    Argument(usize, &'n str),
    Text(&'n str),
}

impl<'n> Path<'n> {
    /// The path of argument `index` (from 0), named `name`.
    pub fn argument(index: usize, name: &'n str) -> Path<'n> {
        Path {
            root: Root::Argument(index, name),
            segments: Vec::new(),
        }
    }

    /// A path whose root is `text` ("the result").
    pub fn text(text: &'n str) -> Path<'n> {
        Path {
            root: Root::Text(text),
            segments: Vec::new(),
        }
    }

    fn with<R>(&mut self, segment: impl Into<String>, f: impl FnOnce(&mut Path<'n>) -> R) -> R {
        self.segments.push(segment.into());
        let r = f(self);
        self.segments.pop();
        r
    }

    fn display(&self) -> String {
        let mut out = match self.root {
            Root::Argument(i, name) => format!("argument {} ({name})", i + 1),
            Root::Text(text) => text.to_string(),
        };
        for s in &self.segments {
            out.push('.');
            out.push_str(s);
        }
        out
    }
}

/// What decoding needs besides the term: the store values are for
/// (resources must belong to it), and the owned resources an argument
/// hands to the guest (they are used up by the call).
pub struct DecodeCx<'s> {
    pub store: &'s ResourceArc<StoreResource>,
    pub moved: Vec<ResourceArc<GuestResource>>,
    /// Decoding a host handler's answer: a resource that is not a handle
    /// is the state of a new resource the host defines (see
    /// `component_host_call`).
    pub host_answer: bool,
    /// How many more terms this decode may take (a binary counts one per
    /// KiB), `None` for no bound; `too_heavy` says the bound stopped it.
    pub budget: Option<usize>,
    pub too_heavy: bool,
    /// The host states a host answer's decode stored so far, to forget
    /// if the answer is refused or declined.
    pub inserted: Vec<u32>,
}

impl DecodeCx<'_> {
    /// Takes `n` from the budget; false (and `too_heavy`) when it is spent.
    fn charge(&mut self, n: usize) -> bool {
        match self.budget.as_mut() {
            None => true,
            Some(left) if *left >= n => {
                *left -= n;
                true
            }
            Some(_) => {
                self.too_heavy = true;
                false
            }
        }
    }
}

fn too_heavy() -> WbError {
    WbError::new(
        Kind::Limit,
        "the arguments are too large to decode on a normal scheduler",
    )
}

fn type_error(path: &Path, ty: &Type, term: Term) -> WbError {
    WbError::new(
        Kind::Type,
        format!(
            "{} must be {}, got: {}",
            path.display(),
            type_text(ty),
            inspect(term)
        ),
    )
}

fn range_error(path: &Path, ty: &Type, term: Term) -> WbError {
    WbError::new(
        Kind::Type,
        format!(
            "{} is out of range for {}: {}",
            path.display(),
            type_text(ty),
            inspect(term)
        ),
    )
}

fn int<T: TryFrom<i128>>(term: Term, path: &Path, ty: &Type) -> WbResult<T> {
    let wide = if let Ok(i) = term.decode::<i64>() {
        i as i128
    } else if let Ok(u) = term.decode::<u64>() {
        u as i128
    } else if term.get_type() == TermType::Integer {
        return Err(range_error(path, ty, term));
    } else {
        return Err(type_error(path, ty, term));
    };
    T::try_from(wide).map_err(|_| range_error(path, ty, term))
}

fn atom_of(term: Term) -> Option<Atom> {
    if term.is_atom() {
        term.decode::<Atom>().ok()
    } else {
        None
    }
}

/// Decodes `term` as a value of `ty`.
pub fn decode(term: Term, ty: &Type, path: &mut Path, cx: &mut DecodeCx) -> WbResult<Val> {
    if !cx.charge(1) {
        return Err(too_heavy());
    }
    let env = term.get_env();
    let bad = |path: &Path| type_error(path, ty, term);
    Ok(match ty {
        Type::Bool => match term.decode::<bool>() {
            Ok(b) => Val::Bool(b),
            Err(_) => return Err(bad(path)),
        },
        Type::S8 => Val::S8(int(term, path, ty)?),
        Type::U8 => Val::U8(int(term, path, ty)?),
        Type::S16 => Val::S16(int(term, path, ty)?),
        Type::U16 => Val::U16(int(term, path, ty)?),
        Type::S32 => Val::S32(int(term, path, ty)?),
        Type::U32 => Val::U32(int(term, path, ty)?),
        Type::S64 => Val::S64(int(term, path, ty)?),
        Type::U64 => Val::U64(int(term, path, ty)?),
        Type::Float32 => Val::Float32(f32::from_bits(decode_f32(term).ok_or_else(|| bad(path))?)),
        Type::Float64 => Val::Float64(f64::from_bits(
            decode_f64_bits(term).ok_or_else(|| bad(path))?,
        )),
        Type::Char => Val::Char(decode_char(term).ok_or_else(|| bad(path))?),
        Type::String => match term.decode::<Binary>() {
            Ok(bin) if term.is_binary() && !cx.charge(bin.len() / 1024) => return Err(too_heavy()),
            Ok(bin) if term.is_binary() => match std::str::from_utf8(bin.as_slice()) {
                Ok(s) => Val::String(s.to_owned()),
                Err(e) => {
                    return Err(WbError::new(
                        Kind::Type,
                        format!(
                            "{} must be a UTF-8 string; invalid UTF-8 at byte {}",
                            path.display(),
                            e.valid_up_to()
                        ),
                    ))
                }
            },
            _ => return Err(bad(path)),
        },
        Type::List(list) => {
            let elem = list.ty();
            if matches!(elem, Type::U8) && term.is_binary() {
                let bin: Binary = term.decode().map_err(|_| bad(path))?;
                if !cx.charge(bin.len() / 1024) {
                    return Err(too_heavy());
                }
                Val::List(bin.as_slice().iter().map(|b| Val::U8(*b)).collect())
            } else {
                Val::List(decode_list(term, &elem, None, path, cx).map_err(|e| e.or(bad(path)))?)
            }
        }
        Type::FixedLengthList(list) => Val::FixedLengthList(
            decode_list(term, &list.ty(), Some(list.len() as usize), path, cx)
                .map_err(|e| e.or(bad(path)))?,
        ),
        Type::Map(map) => {
            let iter = rustler::types::map::MapIterator::new(term).ok_or_else(|| bad(path))?;
            let (kt, vt) = (map.key(), map.value());
            let mut out = Vec::new();
            for (k, v) in iter {
                let key = path.with("key", |p| decode(k, &kt, p, cx))?;
                let value = path.with(format!("[{}]", inspect(k)), |p| decode(v, &vt, p, cx))?;
                out.push((key, value));
            }
            Val::Map(out)
        }
        Type::Record(record) => {
            if !term.is_map() || term.map_size().is_err() {
                return Err(bad(path));
            }
            let size = term.map_size().unwrap_or(0);
            let mut out = Vec::with_capacity(record.fields().len());
            for field in record.fields() {
                let snake = elixir_name(field.name);
                let value = existing_atom(env, field.name)
                    .and_then(|a| term.map_get(a.encode(env)).ok())
                    .or_else(|| term.map_get(snake.as_str().encode(env)).ok())
                    .ok_or_else(|| {
                        WbError::new(
                            Kind::Type,
                            format!(
                                "{} must be {}: field {snake} is missing, got: {}",
                                path.display(),
                                type_text(ty),
                                inspect(term)
                            ),
                        )
                    })?;
                let val = path.with(snake, |p| decode(value, &field.ty, p, cx))?;
                out.push((field.name.to_string(), val));
            }
            if size != out.len() {
                return Err(WbError::new(
                    Kind::Type,
                    format!(
                        "{} must be {}: it has keys that are not fields, got: {}",
                        path.display(),
                        type_text(ty),
                        inspect(term)
                    ),
                ));
            }
            Val::Record(out)
        }
        Type::Tuple(tuple) => {
            let items = get_tuple(term).map_err(|_| bad(path))?;
            if items.len() != tuple.types().len() {
                return Err(bad(path));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, ty)) in items.iter().zip(tuple.types()).enumerate() {
                out.push(path.with(i.to_string(), |p| decode(*item, &ty, p, cx))?);
            }
            Val::Tuple(out)
        }
        Type::Variant(variant) => {
            let (tag, payload) = tagged(term).ok_or_else(|| bad(path))?;
            let case = variant
                .cases()
                .find(|c| atom_is(env, tag, c.name))
                .ok_or_else(|| bad(path))?;
            let value = match (case.ty, payload) {
                (None, None) => None,
                (Some(ty), Some(p)) => {
                    Some(Box::new(path.with(elixir_name(case.name), |path| {
                        decode(p, &ty, path, cx)
                    })?))
                }
                _ => return Err(bad(path)),
            };
            Val::Variant(case.name.to_string(), value)
        }
        Type::Enum(e) => {
            let atom = atom_of(term).ok_or_else(|| bad(path))?;
            let name = e
                .names()
                .find(|n| atom_is(env, atom, n))
                .ok_or_else(|| bad(path))?;
            Val::Enum(name.to_string())
        }
        Type::Flags(flags) => {
            // The length first: an improper list has none (and would make
            // the decoder panic).
            if term.list_length().is_err() {
                return Err(bad(path));
            }
            let items: Vec<Term> = term.decode().map_err(|_| bad(path))?;
            let mut out: Vec<String> = Vec::new();
            for item in items {
                let atom = atom_of(item).ok_or_else(|| bad(path))?;
                let name = flags
                    .names()
                    .find(|n| atom_is(env, atom, n))
                    .ok_or_else(|| bad(path))?;
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
            }
            Val::Flags(out)
        }
        Type::Option(option) => match tagged(term) {
            Some((tag, None)) if tag == atoms::none() => Val::Option(None),
            Some((tag, Some(p))) if tag == atoms::some() => Val::Option(Some(Box::new(
                path.with("some", |path| decode(p, &option.ty(), path, cx))?,
            ))),
            _ => return Err(bad(path)),
        },
        Type::Result(result) => {
            let (tag, payload) = tagged(term).ok_or_else(|| bad(path))?;
            let (ok, ty) = if tag == atoms::ok() {
                (true, result.ok())
            } else if tag == atoms::error() {
                (false, result.err())
            } else {
                return Err(bad(path));
            };
            let value = match (ty, payload) {
                (None, None) => None,
                (Some(ty), Some(p)) => {
                    let segment = if ok { "ok" } else { "error" };
                    Some(Box::new(
                        path.with(segment, |path| decode(p, &ty, path, cx))?,
                    ))
                }
                _ => return Err(bad(path)),
            };
            Val::Result(if ok { Ok(value) } else { Err(value) })
        }
        Type::Own(_) if cx.host_answer && resource_from_term(term).is_none() => {
            let rep = cx.store.host_states.insert(term);
            cx.inserted.push(rep);
            Val::U32(rep)
        }
        Type::Own(rty) | Type::Borrow(rty) => {
            let handle = resource_from_term(term).ok_or_else(|| bad(path))?;
            let own = matches!(ty, Type::Own(_));
            let resource = handle
                .usable(cx.store, rty)
                .map_err(|e| WbError::new(e.kind, format!("{}: {}", path.display(), e.message)))?;
            if own {
                cx.moved.push(handle);
            }
            Val::Resource(resource)
        }
        Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(WbError::new(
                Kind::Type,
                format!(
                    "{}: values of type {} cannot be passed from Elixir yet",
                    path.display(),
                    type_text(ty)
                ),
            ))
        }
    })
}

trait OrBad {
    fn or(self, bad: WbError) -> WbError;
}

impl OrBad for WbError {
    /// A list that is not a list is reported with the whole type;
    /// a bad element with its own path.
    fn or(self, bad: WbError) -> WbError {
        if self.message.is_empty() {
            bad
        } else {
            self
        }
    }
}

fn decode_list(
    term: Term,
    elem: &Type,
    len: Option<usize>,
    path: &mut Path,
    cx: &mut DecodeCx,
) -> WbResult<Vec<Val>> {
    let empty = || WbError::new(Kind::Type, String::new());
    if !term.is_list() {
        return Err(empty());
    }
    let n = term.list_length().map_err(|_| empty())?;
    if len.is_some_and(|l| l != n) {
        return Err(empty());
    }
    let mut out = Vec::with_capacity(n);
    let mut rest = term;
    let mut i = 0;
    while let Ok((head, tail)) = rest.list_get_cell() {
        out.push(path.with(i.to_string(), |p| decode(head, elem, p, cx))?);
        rest = tail;
        i += 1;
    }
    Ok(out)
}

fn decode_char(term: Term) -> Option<char> {
    if term.is_binary() {
        let bin: Binary = term.decode().ok()?;
        let s = std::str::from_utf8(bin.as_slice()).ok()?;
        let mut chars = s.chars();
        let c = chars.next()?;
        return chars.next().is_none().then_some(c);
    }
    let code: u32 = term.decode().ok()?;
    char::from_u32(code)
}

/// `atom` or `{atom, payload}`.
fn tagged(term: Term) -> Option<(Atom, Option<Term>)> {
    if let Some(atom) = atom_of(term) {
        return Some((atom, None));
    }
    let items = get_tuple(term).ok()?;
    if items.len() != 2 {
        return None;
    }
    Some((atom_of(items[0])?, Some(items[1])))
}

/// How many terms or values a normal scheduler converts in one NIF call
/// (a binary counts one per KiB):
/// about a millisecond's work. Larger arguments are decoded, and larger
/// results encoded, on a dirty scheduler (a 3M-element list held a normal
/// scheduler for up to a second).
pub const NORMAL_SCHEDULER_WEIGHT: usize = 4096;

/// Whether `val` has at least `cap` values in all (a `list<u8>` counts one
/// per KiB: it is one binary), counting no further.
pub fn val_heavier_than(val: &Val, cap: usize) -> bool {
    fn walk(val: &Val, left: &mut usize) {
        if *left == 0 {
            return;
        }
        *left -= 1;
        let items: &[Val] = match val {
            Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => items,
            Val::Record(fields) => {
                for (_, v) in fields {
                    walk(v, left);
                }
                return;
            }
            Val::Map(pairs) => {
                for (k, v) in pairs {
                    walk(k, left);
                    walk(v, left);
                }
                return;
            }
            Val::Variant(_, Some(v)) | Val::Option(Some(v)) => {
                walk(v, left);
                return;
            }
            Val::Result(Ok(Some(v)) | Err(Some(v))) => {
                walk(v, left);
                return;
            }
            Val::String(s) => {
                *left = left.saturating_sub(s.len() / 1024);
                return;
            }
            _ => return,
        };
        if items.first().is_some_and(|v| matches!(v, Val::U8(_))) {
            *left = left.saturating_sub(items.len() / 1024);
            return;
        }
        for item in items {
            walk(item, left);
            if *left == 0 {
                return;
            }
        }
    }
    let mut left = cap;
    walk(val, &mut left);
    left == 0
}

/// Decodes the arguments of a call (a list, one term per parameter).
pub fn decode_args(list: Term, params: &[(String, Type)], cx: &mut DecodeCx) -> WbResult<Vec<Val>> {
    let n = list.list_length().map_err(|_| {
        WbError::new(
            Kind::Argument,
            format!("arguments must be a list, got: {}", inspect(list)),
        )
    })?;
    if n != params.len() {
        return Err(WbError::new(
            Kind::Arity,
            format!("the function takes {} arguments, got {n}", params.len()),
        ));
    }
    let items: Vec<Term> = list
        .decode()
        .map_err(|_| WbError::new(Kind::Argument, "arguments must be a proper list"))?;
    items
        .into_iter()
        .zip(params)
        .enumerate()
        .map(|(i, (term, (name, ty)))| {
            let mut path = Path::argument(i, name);
            decode(term, ty, &mut path, cx)
        })
        .collect()
}

/// Encodes a value of `ty`. Resources become handles bound to `store`.
pub fn encode<'a>(
    env: Env<'a>,
    val: &Val,
    ty: &Type,
    store: &ResourceArc<StoreResource>,
) -> Term<'a> {
    let name_atom = |name: &str| match existing_atom(env, name) {
        Some(atom) => atom.encode(env),
        // Never expected: the component's names were made atoms when it
        // was compiled. A string keeps the value rather than failing.
        None => elixir_name(name).encode(env),
    };
    match (val, ty) {
        (Val::Bool(b), _) => b.encode(env),
        (Val::S8(i), _) => i.encode(env),
        (Val::U8(i), _) => i.encode(env),
        (Val::S16(i), _) => i.encode(env),
        (Val::U16(i), _) => i.encode(env),
        (Val::S32(i), _) => i.encode(env),
        (Val::U32(i), _) => i.encode(env),
        (Val::S64(i), _) => i.encode(env),
        (Val::U64(i), _) => i.encode(env),
        (Val::Float32(f), _) => encode_f32(env, f.to_bits()),
        (Val::Float64(f), _) => encode_f64(env, f.to_bits()),
        (Val::Char(c), _) => c.to_string().encode(env),
        (Val::String(s), _) => s.as_str().encode(env),
        (Val::List(items), Type::List(list)) => {
            let elem = list.ty();
            if matches!(elem, Type::U8) {
                let mut bin = NewBinary::new(env, items.len());
                for (slot, v) in bin.as_mut_slice().iter_mut().zip(items) {
                    *slot = if let Val::U8(b) = v { *b } else { 0 };
                }
                Binary::from(bin).to_term(env)
            } else {
                encode_list(env, items, &elem, store)
            }
        }
        (Val::FixedLengthList(items), Type::FixedLengthList(list)) => {
            encode_list(env, items, &list.ty(), store)
        }
        (Val::Map(pairs), Type::Map(map)) => {
            let (kt, vt) = (map.key(), map.value());
            let keys: Vec<Term> = pairs
                .iter()
                .map(|(k, _)| encode(env, k, &kt, store))
                .collect();
            let values: Vec<Term> = pairs
                .iter()
                .map(|(_, v)| encode(env, v, &vt, store))
                .collect();
            // Duplicate keys: the last wins, as the component model says.
            let mut term = Term::map_new(env);
            for (k, v) in keys.into_iter().zip(values) {
                term = term.map_put(k, v).unwrap_or(term);
            }
            term
        }
        (Val::Record(fields), Type::Record(record)) => {
            let keys: Vec<Term> = fields.iter().map(|(n, _)| name_atom(n)).collect();
            let values: Vec<Term> = fields
                .iter()
                .zip(record.fields())
                .map(|((_, v), f)| encode(env, v, &f.ty, store))
                .collect();
            Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
        }
        (Val::Tuple(items), Type::Tuple(tuple)) => {
            let terms: Vec<Term> = items
                .iter()
                .zip(tuple.types())
                .map(|(v, t)| encode(env, v, &t, store))
                .collect();
            make_tuple(env, &terms)
        }
        (Val::Variant(name, payload), Type::Variant(variant)) => {
            let case_ty = variant.cases().find(|c| c.name == name).and_then(|c| c.ty);
            match (payload, case_ty) {
                (Some(p), Some(t)) => {
                    make_tuple(env, &[name_atom(name), encode(env, p, &t, store)])
                }
                _ => name_atom(name),
            }
        }
        (Val::Enum(name), _) => name_atom(name),
        (Val::Flags(names), _) => {
            let terms: Vec<Term> = names.iter().map(|n| name_atom(n)).collect();
            terms.encode(env)
        }
        (Val::Option(None), _) => atoms::none().encode(env),
        (Val::Option(Some(v)), Type::Option(o)) => make_tuple(
            env,
            &[atoms::some().encode(env), encode(env, v, &o.ty(), store)],
        ),
        (Val::Result(r), Type::Result(rt)) => {
            let (tag, payload, pty) = match r {
                Ok(p) => (atoms::ok(), p, rt.ok()),
                Err(p) => (atoms::error(), p, rt.err()),
            };
            match (payload, pty) {
                (Some(p), Some(t)) => {
                    make_tuple(env, &[tag.encode(env), encode(env, p, &t, store)])
                }
                _ => tag.encode(env),
            }
        }
        (Val::Resource(r), _) => encode_resource(env, store, *r),
        _ => atoms::opaque().encode(env),
    }
}

fn encode_list<'a>(
    env: Env<'a>,
    items: &[Val],
    elem: &Type,
    store: &ResourceArc<StoreResource>,
) -> Term<'a> {
    let terms: Vec<Term> = items.iter().map(|v| encode(env, v, elem, store)).collect();
    terms.encode(env)
}

/// `%Wasmbeam.Component.Resource{ref: ref}` for a guest resource handed
/// to Elixir.
fn encode_resource<'a>(
    env: Env<'a>,
    store: &ResourceArc<StoreResource>,
    resource: wasmtime::component::ResourceAny,
) -> Term<'a> {
    let handle = ResourceArc::new(GuestResource::new(store.clone(), resource));
    atoms::elixir_struct(
        env,
        "Elixir.Wasmbeam.Component.Resource",
        &[
            (atoms::r#ref(), handle.encode(env)),
            (atoms::store(), store.encode(env)),
        ],
    )
}

/// The handle in a `%Wasmbeam.Component.Resource{}` (or the bare reference).
pub fn resource_from_term(term: Term) -> Option<ResourceArc<GuestResource>> {
    if let Ok(r) = term.decode::<ResourceArc<GuestResource>>() {
        return Some(r);
    }
    let key = atoms::r#ref().encode(term.get_env());
    term.map_get(key).ok()?.decode().ok()
}

/// A finished component call's result: `{:ok, value}` for a function with
/// a result, `:ok` for one without.
pub fn encode_result<'a>(
    env: Env<'a>,
    value: Option<(Val, Type)>,
    store: &ResourceArc<StoreResource>,
) -> Term<'a> {
    match value {
        Some((val, ty)) => (atoms::ok(), encode(env, &val, &ty, store)).encode(env),
        None => atoms::ok().encode(env),
    }
}

/// A component host call's arguments, as a list. Resources the host
/// defined (`host`: index, owned) are their states: taken out of the
/// store's table when owned (the host has them now), copied when borrowed.
pub fn encode_host_args<'a>(
    env: Env<'a>,
    values: &[Val],
    types: &[Type],
    host: &[(usize, bool)],
    store: &ResourceArc<StoreResource>,
) -> Term<'a> {
    let terms: Vec<Term> = values
        .iter()
        .enumerate()
        .map(|(i, v)| match (host.iter().find(|(h, _)| *h == i), v) {
            (Some((_, owned)), Val::U32(rep)) => store
                .host_states
                .get(env, *rep, *owned)
                .unwrap_or_else(|| atoms::undefined().encode(env)),
            _ => match types.get(i) {
                Some(ty) => encode(env, v, ty, store),
                None => atoms::opaque().encode(env),
            },
        })
        .collect();
    terms.encode(env)
}
