//! Terms written as Elixir shows them, for error messages. Rustler's `{:?}`
//! writes Erlang syntax (`{ok,[1]}`, `<<"x">>`, `#{a=>1}`), which reads
//! oddly in an Elixir library's errors. Long or deep terms are cut short.

use rustler::{Binary, Encoder, Term, TermType};
use std::fmt::Write;

/// Elements shown per list, tuple or map before `...`.
const MAX_ITEMS: usize = 20;
/// Nesting shown before `...`.
const MAX_DEPTH: usize = 8;
/// Bytes of a binary shown before `...`.
const MAX_BYTES: usize = 200;

/// `term` as `inspect/1` would show it (within the limits above).
pub fn inspect(term: Term) -> String {
    let mut out = String::new();
    write_term(&mut out, term, 0);
    out
}

fn write_term(out: &mut String, term: Term, depth: usize) {
    if depth > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    match term.get_type() {
        TermType::Atom => write_atom(out, term),
        TermType::Binary => write_binary(out, term),
        TermType::List => write_list(out, term, depth),
        TermType::Tuple => write_tuple(out, term, depth),
        TermType::Map => write_map(out, term, depth),
        TermType::Pid => {
            let _ = write!(out, "#PID{term:?}");
        }
        TermType::Port => {
            let _ = write!(out, "#Port{term:?}");
        }
        TermType::Ref => {
            let erlang = format!("{term:?}");
            let _ = write!(out, "#Reference{}", erlang.trim_start_matches("#Ref"));
        }
        TermType::Float => match term.decode::<f64>() {
            // The shortest form that reads back as the same float, with a
            // fraction before any exponent, as Elixir writes it: 1.0e20.
            Ok(f) => {
                let text = format!("{f:?}");
                match text.split_once('e') {
                    Some((mantissa, exp)) if !mantissa.contains('.') => {
                        let _ = write!(out, "{mantissa}.0e{exp}");
                    }
                    _ => out.push_str(&text),
                }
            }
            Err(_) => {
                let _ = write!(out, "{term:?}");
            }
        },
        TermType::Integer => write_integer(out, term),
        // Funs look nearly alike in both syntaxes.
        _ => {
            let _ = write!(out, "{term:?}");
        }
    }
}

/// An integer as Elixir writes it; one beyond 64 bits only by its size:
/// printing a bignum takes time that grows with the square of its size
/// (a million-bit one took four seconds), and an error message needs no
/// more than that it is far out of range.
fn write_integer(out: &mut String, term: Term) {
    if let Ok(i) = term.decode::<i64>() {
        let _ = write!(out, "{i}");
    } else if let Ok(u) = term.decode::<u64>() {
        let _ = write!(out, "{u}");
    } else {
        let zero = 0i64.encode(term.get_env());
        let sign = if term < zero { "-" } else { "" };
        // The external form of a bignum is its digits plus a header (4
        // bytes up to 255 digit bytes, 7 beyond): made in time linear in
        // their number.
        let len = term.to_binary().len();
        let header = if len <= 4 + 255 { 4 } else { 7 };
        let bits = len.saturating_sub(header) * 8;
        let _ = write!(out, "{sign}<an integer of about {bits} bits>");
    }
}

fn atom_name(term: Term) -> String {
    term.atom_to_string().unwrap_or_default()
}

/// An atom that needs no quotes after `:` (or before `:` as a key).
fn is_plain_atom(name: &str) -> bool {
    let body = name.strip_suffix(['?', '!']).unwrap_or(name);
    let mut chars = body.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
}

/// `Foo.Bar` for an alias (`Elixir.Foo.Bar`).
fn alias_name(name: &str) -> Option<&str> {
    let alias = name.strip_prefix("Elixir.")?;
    alias
        .split('.')
        .all(|part| {
            part.starts_with(|c: char| c.is_ascii_uppercase())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .then_some(alias)
}

fn write_atom(out: &mut String, term: Term) {
    let name = atom_name(term);
    if matches!(name.as_str(), "nil" | "true" | "false") {
        out.push_str(&name);
    } else if let Some(alias) = alias_name(&name) {
        out.push_str(alias);
    } else if is_plain_atom(&name) {
        out.push(':');
        out.push_str(&name);
    } else {
        out.push(':');
        write_quoted(out, &name);
    }
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_binary(out: &mut String, term: Term) {
    let Ok(binary) = term.decode::<Binary>() else {
        // A bitstring that is not a whole number of bytes.
        let _ = write!(out, "{term:?}");
        return;
    };
    let bytes = binary.as_slice();
    let shown = &bytes[..bytes.len().min(MAX_BYTES)];
    match std::str::from_utf8(shown) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !"\n\t\r".contains(c)) =>
        {
            write_quoted(out, text);
            if shown.len() < bytes.len() {
                out.push_str(" <> ...");
            }
        }
        _ => {
            out.push_str("<<");
            for (i, byte) in shown.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{byte}");
            }
            if shown.len() < bytes.len() {
                out.push_str(", ...");
            }
            out.push_str(">>");
        }
    }
}

/// `{key, value}` with an atom key, as a keyword list's element.
fn keyword_pair(term: Term) -> Option<(String, Term)> {
    let items = rustler::types::tuple::get_tuple(term).ok()?;
    match items.as_slice() {
        [key, value] if key.get_type() == TermType::Atom => Some((atom_name(*key), *value)),
        _ => None,
    }
}

fn write_key(out: &mut String, name: &str) {
    if is_plain_atom(name) {
        out.push_str(name);
    } else {
        write_quoted(out, name);
    }
    out.push_str(": ");
}

fn write_list(out: &mut String, term: Term, depth: usize) {
    let mut cells = Vec::new();
    let mut rest = term;
    while let Ok((head, tail)) = rest.list_get_cell() {
        if cells.len() == MAX_ITEMS {
            break;
        }
        cells.push(head);
        rest = tail;
    }
    let cut = rest.list_get_cell().is_ok();
    let improper = !cut && !rest.is_empty_list();
    let keyword =
        !improper && !cells.is_empty() && cells.iter().all(|c| keyword_pair(*c).is_some());
    out.push('[');
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match keyword_pair(*cell).filter(|_| keyword) {
            Some((key, value)) => {
                write_key(out, &key);
                write_term(out, value, depth + 1);
            }
            None => write_term(out, *cell, depth + 1),
        }
    }
    if cut {
        out.push_str(", ...");
    } else if improper {
        out.push_str(" | ");
        write_term(out, rest, depth + 1);
    }
    out.push(']');
}

fn write_tuple(out: &mut String, term: Term, depth: usize) {
    let items = rustler::types::tuple::get_tuple(term).unwrap_or_default();
    out.push('{');
    for (i, item) in items.iter().take(MAX_ITEMS).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_term(out, *item, depth + 1);
    }
    if items.len() > MAX_ITEMS {
        out.push_str(", ...");
    }
    out.push('}');
}

fn write_map(out: &mut String, term: Term, depth: usize) {
    let Some(pairs) = rustler::types::map::MapIterator::new(term) else {
        let _ = write!(out, "{term:?}");
        return;
    };
    let pairs: Vec<(Term, Term)> = pairs.collect();
    let struct_name = pairs.iter().find_map(|(k, v)| {
        (k.get_type() == TermType::Atom && atom_name(*k) == "__struct__")
            .then(|| alias_name(&atom_name(*v)).map(str::to_owned))
            .flatten()
    });
    let fields: Vec<&(Term, Term)> = pairs
        .iter()
        .filter(|(k, _)| struct_name.is_none() || atom_name(*k) != "__struct__")
        .collect();
    let atom_keys = fields.iter().all(|(k, _)| k.get_type() == TermType::Atom);
    out.push('%');
    if let Some(name) = &struct_name {
        out.push_str(name);
    }
    out.push('{');
    for (i, (key, value)) in fields.iter().take(MAX_ITEMS).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if atom_keys {
            write_key(out, &atom_name(*key));
        } else {
            write_term(out, *key, depth + 1);
            out.push_str(" => ");
        }
        write_term(out, *value, depth + 1);
    }
    if fields.len() > MAX_ITEMS {
        out.push_str(", ...");
    }
    out.push('}');
}
