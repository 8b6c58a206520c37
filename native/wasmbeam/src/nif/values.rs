//! Wasm values <-> Elixir terms.
//!
//! | Wasm | Elixir |
//! |---|---|
//! | i32, i64 | integers (signed or unsigned range accepted; signed returned) |
//! | f32, f64 | floats; `:infinity`, `:neg_infinity`, `:nan` (canonical) or `{:nan, bits}` |
//! | v128 | a non-negative integer below 2^128 (negative i128 accepted) |
//! | funcref | `%Wasmbeam.Func{}` or `nil` |
//! | externref | any term (stored as external term format) or `nil` |

use crate::nif::handles::encode_anonymous_func;
use crate::resources::atoms;
use crate::resources::handles::FuncResource;
use crate::resources::store::StoreResource;
use rustler::{Atom, Encoder, Env, ResourceArc, Term};
use smallvec::SmallVec;
use std::sync::Arc;
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmbeam_runtime::driver::values::{Arg, Args, Out, F32_CANONICAL_NAN, F64_CANONICAL_NAN};
use wasmtime::{HeapType, Val, ValType, V128};

fn type_error(term: Term, ty: &ValType, position: usize) -> WbError {
    let (ty, got) = described(term, ty);
    WbError::new(
        Kind::Type,
        format!("argument {} must be {ty}, got: {got}", position + 1),
    )
}

/// An integer that does not fit: says so, and what fits.
#[cold]
fn range_error(term: Term, ty: &ValType, position: usize, range: &str) -> WbError {
    let (ty, got) = described(term, ty);
    WbError::new(
        Kind::Type,
        format!(
            "argument {} is out of range for {ty}: {got} (it takes {range})",
            position + 1
        ),
    )
}

/// The type's name and the term, as an argument error writes them.
#[cold]
fn described(term: Term, ty: &ValType) -> (String, String) {
    let name = crate::nif::types::val_type_atom(ty)
        .to_term(term.get_env())
        .atom_to_string()
        .unwrap_or_default();
    (name, crate::nif::inspect::inspect(term))
}

fn decode_f64(term: Term) -> Option<f64> {
    if let Ok(f) = term.decode::<f64>() {
        return Some(f);
    }
    if let Ok(i) = term.decode::<i64>() {
        return Some(i as f64);
    }
    let atom = term.decode::<Atom>().ok()?;
    if atom == atoms::infinity() {
        Some(f64::INFINITY)
    } else if atom == atoms::neg_infinity() {
        Some(f64::NEG_INFINITY)
    } else {
        None
    }
}

/// A NaN argument: `:nan` (canonical) or `{:nan, bits}`.
enum NanArg {
    Canonical,
    Bits(u64),
}

fn nan_arg(term: Term) -> Option<NanArg> {
    if term.decode::<Atom>().ok() == Some(atoms::nan()) {
        return Some(NanArg::Canonical);
    }
    let (tag, bits): (Atom, u64) = term.decode().ok()?;
    (tag == atoms::nan()).then_some(NanArg::Bits(bits))
}

pub fn decode_f32(term: Term) -> Option<u32> {
    match nan_arg(term) {
        Some(NanArg::Canonical) => return Some(F32_CANONICAL_NAN),
        Some(NanArg::Bits(bits)) => {
            let bits = u32::try_from(bits).ok()?;
            return f32::from_bits(bits).is_nan().then_some(bits);
        }
        None => {}
    }
    decode_f64(term).map(|f| (f as f32).to_bits())
}

pub fn decode_f64_bits(term: Term) -> Option<u64> {
    match nan_arg(term) {
        Some(NanArg::Canonical) => return Some(F64_CANONICAL_NAN),
        Some(NanArg::Bits(bits)) => return f64::from_bits(bits).is_nan().then_some(bits),
        None => {}
    }
    decode_f64(term).map(f64::to_bits)
}

fn decode_func(term: Term) -> Option<ResourceArc<FuncResource>> {
    if let Ok(r) = term.decode::<ResourceArc<FuncResource>>() {
        return Some(r);
    }
    let key = atoms::r#ref().encode(term.get_env());
    term.map_get(key).ok()?.decode().ok()
}

#[inline]
pub fn decode_arg(term: Term, ty: &ValType, position: usize, store_id: u64) -> WbResult<Arg> {
    let bad = || type_error(term, ty, position);
    let val = match ty {
        ValType::I32 => {
            const RANGE: &str = "-2147483648..4294967295, signed or unsigned";
            let i = match term.decode::<i64>() {
                Ok(i) => i,
                Err(_) if term.is_integer() => return Err(range_error(term, ty, position, RANGE)),
                Err(_) => return Err(bad()),
            };
            if !(i32::MIN as i64..=u32::MAX as i64).contains(&i) {
                return Err(range_error(term, ty, position, RANGE));
            }
            Val::I32(i as u32 as i32)
        }
        ValType::I64 => match term.decode::<i64>() {
            Ok(i) => Val::I64(i),
            Err(_) => match term.decode::<u64>() {
                Ok(u) => Val::I64(u as i64),
                Err(_) if term.is_integer() => {
                    return Err(range_error(
                        term,
                        ty,
                        position,
                        "-9223372036854775808..18446744073709551615, signed or unsigned",
                    ))
                }
                Err(_) => return Err(bad()),
            },
        },
        ValType::F32 => Val::F32(decode_f32(term).ok_or_else(bad)?),
        ValType::F64 => Val::F64(decode_f64_bits(term).ok_or_else(bad)?),
        ValType::V128 => {
            // Rustler truncates integers outside the range; re-encoding
            // shows whether the value survived intact.
            let env = term.get_env();
            let bits = match term.decode::<u128>() {
                Ok(u) if u.encode(env) == term => u,
                _ => match term.decode::<i128>() {
                    Ok(i) if i.encode(env) == term => i as u128,
                    _ => return Err(bad()),
                },
            };
            Val::V128(V128::from(bits))
        }
        ValType::Ref(r) => {
            let is_nil = term.decode::<Atom>().ok() == Some(atoms::nil());
            match r.heap_type() {
                HeapType::Extern | HeapType::NoExtern => {
                    if is_nil {
                        return Ok(Arg::Extern(None));
                    }
                    if matches!(r.heap_type(), HeapType::NoExtern) || !r.is_nullable() && is_nil {
                        return Err(bad());
                    }
                    let bytes: Arc<[u8]> = Arc::from(term.to_binary().as_slice());
                    return Ok(Arg::Extern(Some(bytes)));
                }
                HeapType::Func | HeapType::ConcreteFunc(_) | HeapType::NoFunc => {
                    if is_nil {
                        Val::FuncRef(None)
                    } else {
                        let f = decode_func(term).ok_or_else(bad)?;
                        if f.store.id() != store_id {
                            return Err(WbError::new(
                                Kind::Type,
                                format!("argument {} is a function of another store", position + 1),
                            ));
                        }
                        Val::FuncRef(Some(f.func))
                    }
                }
                _ if is_nil => Val::null_ref(r.heap_type()),
                _ => return Err(bad()),
            }
        }
    };
    Ok(Arg::Val(val))
}

/// Decodes a list of arguments against parameter types (for the store
/// with id `store_id`: funcrefs of other stores are refused).
#[inline]
pub fn decode_args(list: Term, types: &[ValType], store_id: u64) -> WbResult<Args> {
    let mut args = Args::new();
    decode_args_into(list, types, store_id, &mut args)?;
    Ok(args)
}

/// [`decode_args`] into `args` (empty), where the caller keeps them.
#[inline]
pub fn decode_args_into(
    list: Term,
    types: &[ValType],
    store_id: u64,
    args: &mut Args,
) -> WbResult<()> {
    let not_a_list = || WbError::new(Kind::Argument, "arguments must be a proper list");
    // Check the length first: iterating an improper list would stop early.
    let len = list.list_length().map_err(|_| not_a_list())?;
    if len != types.len() {
        return Err(WbError::new(
            Kind::Arity,
            format!("expected {} argument(s), got {len}", types.len()),
        ));
    }
    let mut rest = list;
    for (i, ty) in types.iter().enumerate() {
        let (head, tail) = rest.list_get_cell().map_err(|_| not_a_list())?;
        args.push(decode_arg(head, ty, i, store_id)?);
        rest = tail;
    }
    Ok(())
}

/// A float result: a float, `:infinity`/`:neg_infinity`, `:nan` for the
/// canonical NaN, or `{:nan, bits}` keeping any other NaN's bit pattern.
fn encode_float<'a>(env: Env<'a>, value: f64, bits: u64, canonical_nan: bool) -> Term<'a> {
    if value.is_nan() {
        if canonical_nan {
            atoms::nan().encode(env)
        } else {
            (atoms::nan(), bits).encode(env)
        }
    } else if value == f64::INFINITY {
        atoms::infinity().encode(env)
    } else if value == f64::NEG_INFINITY {
        atoms::neg_infinity().encode(env)
    } else {
        value.encode(env)
    }
}

pub fn encode_f32(env: Env, bits: u32) -> Term {
    let value = f32::from_bits(bits) as f64;
    encode_float(env, value, bits as u64, bits == F32_CANONICAL_NAN)
}

pub fn encode_f64(env: Env, bits: u64) -> Term {
    encode_float(env, f64::from_bits(bits), bits, bits == F64_CANONICAL_NAN)
}

#[inline]
pub fn encode_out<'a>(env: Env<'a>, out: &Out, store: &ResourceArc<StoreResource>) -> Term<'a> {
    match out {
        Out::Val(Val::I32(i)) => i.encode(env),
        Out::Val(Val::I64(i)) => i.encode(env),
        Out::Val(Val::F32(bits)) => encode_f32(env, *bits),
        Out::Val(Val::F64(bits)) => encode_f64(env, *bits),
        Out::Val(Val::V128(v)) => v.as_u128().encode(env),
        Out::Val(Val::FuncRef(None)) => atoms::nil().encode(env),
        Out::Func(f, sig) => encode_anonymous_func(env, store, *f, sig.clone()),
        Out::Extern(None) => atoms::nil().encode(env),
        Out::Extern(Some(bytes)) => match env.binary_to_term(bytes) {
            Some((term, _)) => term,
            None => atoms::opaque().encode(env),
        },
        Out::Val(_) | Out::Opaque => atoms::opaque().encode(env),
    }
}

pub fn encode_outs<'a>(env: Env<'a>, outs: &[Out], store: &ResourceArc<StoreResource>) -> Term<'a> {
    // One list made from the terms on the stack: no heap vector, and one
    // call into the VM rather than one per cell.
    let terms: SmallVec<[rustler::sys::ErlNifTerm; 4]> = outs
        .iter()
        .map(|o| encode_out(env, o, store).as_c_arg())
        .collect();
    // SAFETY: every term was made in `env`, and the list is made there too.
    unsafe {
        Term::new(
            env,
            rustler::sys::enif_make_list_from_array(
                env.as_c_arg(),
                terms.as_ptr(),
                terms.len() as u32,
            ),
        )
    }
}
