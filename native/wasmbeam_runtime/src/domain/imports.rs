//! The one import resolver: what each import of a module is bound to,
//! for `Instance.new` (externs made in a store) and for linked modules
//! (a linker, once, for Wasmtime's `InstancePre`); and the one WASI linker.
//!
//! Precedence is the same on both paths: an import the import map names
//! (a host function, even for a WASI name) is bound to that; a `:wasi`
//! import to Wasmtime's WASI preview 1 implementation.

use crate::domain::host_funcs::{self, HostFuncSpec};
use crate::driver::engine::EngineCore;
use crate::driver::error::{chain_message, msg, Kind, WbError, WbResult};
use crate::driver::store::WStore;
use crate::driver::store_data::StoreData;
use crate::driver::values::{arg_to_val, Arg};
use wasmtime::{
    Extern, ExternType, Func, Global, GlobalType, ImportType, InstancePre, Linker, Memory,
    MemoryTypeBuilder, Module, Mutability, Ref, RefType, RootScope, Table, TableType, Tag, ValType,
};

/// What one import is bound to, decoded from `Wasmbeam.Imports`' list.
pub enum ImportSpec {
    /// An export of an instance in the store with this id.
    Func(Func, u64),
    Memory(Memory, u64),
    Global(Global, u64),
    Table(Table, u64),
    Tag(Tag, u64),
    /// Wasmtime's WASI preview 1 function of this name.
    Wasi,
    DefineFunc(HostFuncSpec),
    DefineGlobal {
        ty: ValType,
        mutable: bool,
        value: Arg,
    },
    DefineMemory {
        min: u64,
        max: Option<u64>,
    },
    DefineTable {
        element: ValType,
        min: u64,
        max: Option<u64>,
    },
}

impl ImportSpec {
    fn kind(&self) -> &'static str {
        match self {
            ImportSpec::Func(..) | ImportSpec::DefineFunc(_) => "function",
            ImportSpec::Memory(..) | ImportSpec::DefineMemory { .. } => "memory",
            ImportSpec::Global(..) | ImportSpec::DefineGlobal { .. } => "global",
            ImportSpec::Table(..) | ImportSpec::DefineTable { .. } => "table",
            ImportSpec::Tag(..) => "tag",
            ImportSpec::Wasi => "WASI function",
        }
    }
}

fn kind_of(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "function",
        ExternType::Memory(_) => "memory",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Tag(_) => "tag",
    }
}

fn link_error(message: impl Into<String>) -> WbError {
    WbError::new(Kind::Link, message)
}

/// The one check that two things were made by the same engine.
pub fn same_engine(engine: &EngineCore, other: &wasmtime::Engine, what: &str) -> WbResult<()> {
    if engine.same(other) {
        Ok(())
    } else {
        Err(link_error(format!("{what} {}", msg::OTHER_ENGINE)))
    }
}

fn same_types(a: &[ValType], b: impl ExactSizeIterator<Item = ValType>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, &y))
}

/// Checks what can be checked before anything is made: one binding per
/// import, of the import's kind, and host functions of the import's type.
/// A mismatch found here leaves nothing behind in a store.
pub fn precheck<'m>(module: &'m Module, specs: &[ImportSpec]) -> WbResult<Vec<ImportType<'m>>> {
    let declared: Vec<ImportType> = module.imports().collect();
    if declared.len() != specs.len() {
        return Err(WbError::new(
            Kind::Argument,
            "one resolved import per import of the module",
        ));
    }
    for (spec, import) in specs.iter().zip(&declared) {
        let ty = import.ty();
        let expected = kind_of(&ty);
        let fits = match (spec, &ty) {
            (ImportSpec::Wasi, ExternType::Func(_)) => true,
            (ImportSpec::DefineFunc(f), ExternType::Func(t)) => {
                same_types(&f.params, t.params()) && same_types(&f.results, t.results())
            }
            (ImportSpec::DefineGlobal { ty, mutable, .. }, ExternType::Global(g)) => {
                ValType::eq(ty, g.content()) && *mutable == (g.mutability() == Mutability::Var)
            }
            (ImportSpec::DefineMemory { min, max }, ExternType::Memory(m)) => {
                !m.is_64() && !m.is_shared() && limits_fit(*min, *max, m.minimum(), m.maximum())
            }
            (ImportSpec::DefineTable { element, min, max }, ExternType::Table(t)) => {
                let element_fits = match element {
                    ValType::Ref(r) => {
                        r.heap_type().is_extern() == t.element().heap_type().is_extern()
                    }
                    _ => false,
                };
                element_fits && limits_fit(*min, *max, t.minimum(), t.maximum())
            }
            (spec, _) => spec.kind() == expected,
        };
        if !fits {
            return Err(link_error(format!(
                "import {:?} {:?} expects a {expected} of type {ty:?}, the import map gives a {}{}",
                import.module(),
                import.name(),
                spec.kind(),
                match spec {
                    ImportSpec::DefineFunc(f) => format!(" ({:?} -> {:?})", f.params, f.results),
                    _ => String::new(),
                }
            )));
        }
    }
    Ok(declared)
}

/// Whether limits `min..max` satisfy an import that asks for
/// `want_min..want_max` (Wasm's subtyping of limits).
fn limits_fit(min: u64, max: Option<u64>, want_min: u64, want_max: Option<u64>) -> bool {
    min >= want_min
        && match (max, want_max) {
            (_, None) => true,
            (Some(max), Some(want)) => max <= want,
            (None, Some(_)) => false,
        }
}

fn same_store(store_id: u64, owner: u64, what: &str) -> WbResult<()> {
    if store_id == owner {
        Ok(())
    } else {
        Err(link_error(format!(
            "{what} belongs to another store; instantiate into the store it lives in"
        )))
    }
}

/// The externs for `module`'s imports, made in `store` (whose id is
/// `store_id`), and the instance counted against the store's limits.
/// Nothing is made when a binding does not fit its import or a count
/// limit would be passed.
pub fn resolve(
    engine: &EngineCore,
    store_id: u64,
    store: &mut WStore,
    module: &Module,
    specs: &[ImportSpec],
) -> WbResult<Vec<Extern>> {
    let declared = precheck(module, specs)?;
    // A refusal recorded earlier (a `memory.grow` a limit refused while
    // guest code ran) says nothing about this instantiation.
    store.data_mut().limiter.take_refusal();
    reserve_instance(store, module)?;
    let mut externs = Vec::with_capacity(specs.len());
    for (spec, import) in specs.iter().zip(&declared) {
        externs.push(make_extern(engine, store_id, store, spec, import)?);
    }
    Ok(externs)
}

fn setup_failure(store: &mut WStore, err: wasmtime::Error) -> WbError {
    let kind = store.data_mut().setup_error(&err);
    WbError::new(kind, chain_message(&err))
}

fn make_extern(
    engine: &EngineCore,
    store_id: u64,
    store: &mut WStore,
    spec: &ImportSpec,
    import: &ImportType,
) -> WbResult<Extern> {
    Ok(match spec {
        ImportSpec::Func(f, owner) => {
            same_store(store_id, *owner, "an imported function")?;
            Extern::Func(*f)
        }
        ImportSpec::Memory(m, owner) => {
            same_store(store_id, *owner, "an imported memory")?;
            Extern::Memory(*m)
        }
        ImportSpec::Global(g, owner) => {
            same_store(store_id, *owner, "an imported global")?;
            Extern::Global(*g)
        }
        ImportSpec::Table(t, owner) => {
            same_store(store_id, *owner, "an imported table")?;
            Extern::Table(*t)
        }
        ImportSpec::Tag(t, owner) => {
            same_store(store_id, *owner, "an imported tag")?;
            Extern::Tag(*t)
        }
        ImportSpec::Wasi => wasi_import(engine, store, import.module(), import.name())?,
        ImportSpec::DefineFunc(spec) => Extern::Func(host_funcs::in_store(store, spec)),
        ImportSpec::DefineGlobal { ty, mutable, value } => {
            let mut scope = RootScope::new(&mut *store);
            let value = match value {
                Arg::Val(v) => Arg::Val(*v),
                Arg::Extern(e) => Arg::Extern(e.clone()),
            };
            let made = arg_to_val(value, &mut scope).and_then(|val| {
                let mutability = if *mutable {
                    Mutability::Var
                } else {
                    Mutability::Const
                };
                Global::new(&mut scope, GlobalType::new(ty.clone(), mutability), val)
            });
            drop(scope);
            made.map(Extern::Global)
                .map_err(|e| setup_failure(store, e))?
        }
        ImportSpec::DefineMemory { min, max } => {
            let mut builder = MemoryTypeBuilder::new();
            builder.min(*min).max(*max);
            let ty = builder.build().map_err(|e| {
                WbError::new(
                    Kind::Argument,
                    format!("invalid memory type: {}", chain_message(&e)),
                )
            })?;
            Memory::new(&mut *store, ty)
                .map(Extern::Memory)
                .map_err(|e| setup_failure(store, e))?
        }
        ImportSpec::DefineTable { element, min, max } => {
            let (ref_type, init) = match element {
                ValType::Ref(r) if r.heap_type().is_extern() => {
                    (RefType::EXTERNREF, Ref::Extern(None))
                }
                ValType::Ref(_) => (RefType::FUNCREF, Ref::Func(None)),
                _ => return Err(WbError::new(Kind::Argument, "a table holds references")),
            };
            let too_big = |n: u64| {
                u32::try_from(n).map_err(|_| {
                    WbError::new(
                        Kind::Argument,
                        format!("a table of {n} elements is larger than a 32-bit table can be"),
                    )
                })
            };
            let ty = TableType::new(ref_type, too_big(*min)?, max.map(too_big).transpose()?);
            Table::new(&mut *store, ty, init)
                .map(Extern::Table)
                .map_err(|e| setup_failure(store, e))?
        }
    })
}

/// The store's WASI context; a store never given one gets a context that
/// grants nothing (only reachable if a WASI function of another store's
/// making is called, which linking prevents).
fn wasi_context(data: &mut StoreData) -> &mut wasmtime_wasi::p1::WasiP1Ctx {
    data.wasi
        .get_or_insert_with(crate::driver::wasi_io::empty_context)
}

/// Wasmtime's WASI preview 1 functions, linked once per engine: the one
/// WASI linker, used by both paths.
fn wasi_linker(engine: &EngineCore) -> WbResult<&Linker<StoreData>> {
    engine.wasi_linker.get_or_try_init(|| {
        let mut linker = Linker::new(&engine.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, wasi_context)
            .map_err(|e| link_error(chain_message(&e)))?;
        Ok(linker)
    })
}

fn wasi_import(
    engine: &EngineCore,
    store: &mut WStore,
    module: &str,
    name: &str,
) -> WbResult<Extern> {
    if store.data().wasi.is_none() {
        return Err(link_error(format!(
            "the module imports {module:?} {name:?} from WASI, but the store has no WASI context (pass wasi: options)"
        )));
    }
    wasi_linker(engine)?
        .get(&mut *store, module, name)
        .map_err(|_| {
            link_error(format!(
                "WASI preview 1 has no function {module:?} {name:?}"
            ))
        })
}

/// A module linked ahead: its `InstancePre`, and whether it needs a WASI
/// context in the stores it is instantiated into.
pub struct Linked {
    pub pre: InstancePre<StoreData>,
    pub wasi: bool,
}

/// Links `module` once. Only bindings that belong to no store can be
/// linked ahead: host functions and WASI.
pub fn link(engine: &EngineCore, module: &Module, specs: &[ImportSpec]) -> WbResult<Linked> {
    let declared = precheck(module, specs)?;
    let wasi = specs.iter().any(|s| matches!(s, ImportSpec::Wasi));
    let mut linker = if wasi {
        let mut linker = wasi_linker(engine)?.clone();
        // The host functions defined below replace single WASI functions
        // that the import map overrides.
        linker.allow_shadowing(true);
        linker
    } else {
        Linker::new(&engine.engine)
    };
    for (spec, import) in specs.iter().zip(&declared) {
        match spec {
            ImportSpec::DefineFunc(f) => {
                host_funcs::in_linker(&mut linker, import.module(), import.name(), f)
                    .map_err(|e| link_error(chain_message(&e)))?;
            }
            ImportSpec::Wasi => {}
            _ => {
                return Err(link_error(format!(
                    "import {:?} {:?}: a linked module can take only host functions and WASI \
                     (exports of instances and defined globals, memories and tables belong to \
                     one store: use Wasmbeam.Instance.new/3)",
                    import.module(),
                    import.name()
                )))
            }
        }
    }
    let pre = linker
        .instantiate_pre(module)
        .map_err(|e| link_error(chain_message(&e)))?;
    Ok(Linked { pre, wasi })
}

/// Counts an instance of `module` against the store's count limits before
/// it is instantiated (see `RecordingLimiter::reserve_instance`).
pub fn reserve_instance(store: &mut WStore, module: &Module) -> WbResult<()> {
    let needs = module.resources_required();
    store
        .data_mut()
        .limiter
        .reserve_instance(needs.num_memories as usize, needs.num_tables as usize)
}
