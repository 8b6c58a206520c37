//! Store limits and import resolution: what an instantiation is refused
//! for (kind Limit, kind Link), and what a refused one leaves in the store.

use crate::common::*;
use wasmbeam_runtime::domain::imports::{self, ImportSpec};
use wasmbeam_runtime::driver::error::Kind;
use wasmbeam_runtime::driver::store_data::StoreLimitsSpec;
use wasmbeam_runtime::driver::values::Arg;
use wasmtime::{Extern, Func, Val, ValType};

const PLAIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))"#;

const TWO_PAGES: &str = r#"(module (memory (export "memory") 2))"#;

const IMPORTS: &str = r#"(module
  (import "env" "a" (func $a (param i32) (result i32)))
  (import "env" "m" (memory 1))
  (func (export "call_a") (param i32) (result i32) local.get 0 call $a))"#;

fn a_spec() -> ImportSpec {
    host(0, "env.a", &[ValType::I32], &[ValType::I32])
}

/// The host function `env.a` the store made, if it made one.
fn made_a(f: &Fixture) -> Option<Func> {
    f.store
        .with_idle(|s| {
            Ok(s.data()
                .host_func(REGISTRY, 0, "env.a", &[ValType::I32], &[ValType::I32]))
        })
        .unwrap()
}

/// Whether two functions are one function of the store.
fn same_func(f: &Fixture, a: Func, b: Func) -> bool {
    f.store
        .with_idle(|s| Ok(a.to_raw(&mut *s) == b.to_raw(&mut *s)))
        .unwrap()
}

fn limits(spec: StoreLimitsSpec) -> Fixture {
    Fixture::with_limits(&engine(), &spec)
}

#[test]
fn the_instance_count_limit_refuses_the_second_instantiation() {
    let f = limits(StoreLimitsSpec {
        instances: Some(1),
        ..Default::default()
    });
    let m = module(&f.engine, PLAIN);
    instantiate(&f.store, 1, &f.cx, &m, vec![]).expect("the first instance");
    match instantiate(&f.store, 1, &f.cx, &m, vec![]) {
        Ok(_) => panic!("a second instance was made in a store limited to one"),
        Err(e) => assert_eq!(e.kind, Kind::Limit, "{}", e.message),
    }
    assert!(f.store.usable());
}

#[test]
fn the_limiter_counts_instances_memories_and_tables_when_asked() {
    // What the instantiation path would have to call: the limiter's own
    // count, refused with kind Limit.
    let f = limits(StoreLimitsSpec {
        instances: Some(2),
        memories: Some(1),
        tables: Some(1),
        ..Default::default()
    });
    let reserve = |memories, tables| {
        f.store
            .with_idle(|s| s.data_mut().limiter.reserve_instance(memories, tables))
    };
    reserve(1, 0).expect("first instance, one memory");
    let e = err_of(reserve(1, 0));
    assert_eq!(e.kind, Kind::Limit);
    assert!(e.message.contains("memory"), "{}", e.message);
    reserve(0, 1).expect("second instance, one table");
    let e = err_of(reserve(0, 0));
    assert_eq!(e.kind, Kind::Limit);
    assert!(e.message.contains("instance"), "{}", e.message);
}

#[test]
fn a_module_memory_over_the_store_limit_is_a_limit_error() {
    let f = limits(StoreLimitsSpec {
        memory_size: Some(65536),
        ..Default::default()
    });
    let m = module(&f.engine, TWO_PAGES);
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, vec![]));
    assert_eq!(e.kind, Kind::Limit, "{}", e.message);
    assert!(f.store.usable());
    // A module within the limit instantiates into the same store.
    let instance = f.instance(PLAIN, vec![]);
    assert_eq!(
        outs_i32(&f.call(1, &instance, "add", i32s(&[1, 2])).unwrap()),
        vec![3]
    );
}

#[test]
fn a_module_table_over_the_store_limit_is_a_limit_error() {
    let f = limits(StoreLimitsSpec {
        table_elements: Some(5),
        ..Default::default()
    });
    let m = module(&f.engine, r#"(module (table 10 funcref))"#);
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, vec![]));
    assert_eq!(e.kind, Kind::Limit, "{}", e.message);
}

#[test]
fn a_wrong_import_type_is_a_link_error_and_makes_nothing_in_the_store() {
    let f = Fixture::new(&engine());
    let m = module(&f.engine, IMPORTS);
    // `env.a` fits; `env.m` is given a function where a memory is imported.
    let specs = vec![a_spec(), host(1, "env.m", &[], &[])];
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, specs));
    assert_eq!(e.kind, Kind::Link);
    assert!(e.message.contains("\"m\""), "{}", e.message);
    // Checked before anything was made: not even `env.a`.
    assert!(made_a(&f).is_none());

    // A host function of the wrong type likewise.
    let specs = vec![
        host(0, "env.a", &[ValType::I64], &[ValType::I32]),
        ImportSpec::DefineMemory { min: 1, max: None },
    ];
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, specs));
    assert_eq!(e.kind, Kind::Link);
    assert!(made_a(&f).is_none());

    // One binding per import.
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, vec![a_spec()]));
    assert_eq!(e.kind, Kind::Argument);
    assert!(made_a(&f).is_none());
    assert!(f.store.usable());
}

#[test]
fn a_host_function_defined_again_with_the_same_handler_and_type_is_reused() {
    let f = limits(StoreLimitsSpec {
        memory_size: Some(65536),
        ..Default::default()
    });
    let m = module(&f.engine, IMPORTS);

    // The defined memory is over the limit: refused after `env.a` was made.
    let specs = vec![a_spec(), ImportSpec::DefineMemory { min: 2, max: None }];
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, specs));
    assert_eq!(e.kind, Kind::Limit, "{}", e.message);
    let first = made_a(&f).expect("env.a was made before the memory failed");

    // The retry reuses it instead of making another.
    let specs = vec![a_spec(), ImportSpec::DefineMemory { min: 1, max: None }];
    let instance = instantiate(&f.store, 1, &f.cx, &m, specs).expect("retry");
    assert!(same_func(&f, made_a(&f).unwrap(), first));

    // So does resolving the same imports again, for another instance.
    let externs = f
        .store
        .with_idle(|s| {
            imports::resolve(
                &f.engine,
                f.store.id,
                s,
                &m,
                &[a_spec(), ImportSpec::DefineMemory { min: 1, max: None }],
            )
        })
        .unwrap();
    match externs[0] {
        Extern::Func(func) => assert!(same_func(&f, func, first)),
        _ => panic!("expected a function"),
    }
    // Another index (another handler) is another function.
    let other = f
        .store
        .with_idle(|s| {
            imports::resolve(
                &f.engine,
                f.store.id,
                s,
                &m,
                &[
                    host(5, "env.a", &[ValType::I32], &[ValType::I32]),
                    ImportSpec::DefineMemory { min: 1, max: None },
                ],
            )
        })
        .unwrap();
    match other[0] {
        Extern::Func(func) => assert!(!same_func(&f, func, first)),
        _ => panic!("expected a function"),
    }

    // The instance works, through the reused host function.
    let (call_a, sig) = f.export(&instance, "call_a");
    let begin = start_call(
        &f.store,
        1,
        &Default::default(),
        &f.cx,
        call_a,
        &sig,
        i32s(&[6]),
    )
    .unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));
    assert_eq!(request.index, 0);
    let polled = answer_values(&f.store, 1, request.id, i32s(&[60]), &f.cx).unwrap();
    let outs = values(expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap()).unwrap();
    assert_eq!(outs_i32(&outs), vec![60]);
}

#[test]
fn an_export_of_another_store_is_a_link_error() {
    let engine = engine();
    let a = Fixture::new(&engine);
    let b = Fixture::new(&engine);
    let ia = a.instance(PLAIN, vec![]);
    let memory = a
        .store
        .with_idle(|s| Ok(ia.get_memory(&mut *s, "memory").unwrap()))
        .unwrap();
    let m = module(&engine, r#"(module (import "env" "m" (memory 1)))"#);
    let e = err_of(instantiate(
        &b.store,
        1,
        &b.cx,
        &m,
        vec![ImportSpec::Memory(memory, a.store.id)],
    ));
    assert_eq!(e.kind, Kind::Link);
    // In its own store it links.
    instantiate(
        &a.store,
        1,
        &a.cx,
        &m,
        vec![ImportSpec::Memory(memory, a.store.id)],
    )
    .expect("same store");
}

#[test]
fn a_global_of_the_wrong_type_is_a_link_error() {
    // Global, memory and table types are not prechecked (only kinds and
    // host function types are): the global is made in the store, then
    // the instantiation refuses it.
    let f = Fixture::new(&engine());
    let m = module(&f.engine, r#"(module (import "env" "g" (global i32)))"#);
    let e = err_of(instantiate(
        &f.store,
        1,
        &f.cx,
        &m,
        vec![ImportSpec::DefineGlobal {
            ty: ValType::I64,
            mutable: false,
            value: Arg::Val(Val::I64(1)),
        }],
    ));
    assert_eq!(e.kind, Kind::Link, "{}", e.message);
    assert!(f.store.usable());
}

#[test]
fn a_wasi_import_needs_a_wasi_context() {
    let f = Fixture::new(&engine());
    let m = module(
        &f.engine,
        r#"(module (import "wasi_snapshot_preview1" "fd_read"
             (func (param i32 i32 i32 i32) (result i32))))"#,
    );
    let e = err_of(instantiate(&f.store, 1, &f.cx, &m, vec![ImportSpec::Wasi]));
    assert_eq!(e.kind, Kind::Link);
    assert!(e.message.contains("WASI context"), "{}", e.message);
}

#[test]
fn a_refused_memory_grow_does_not_make_a_later_link_error_a_limit_error() {
    let f = limits(StoreLimitsSpec {
        memory_size: Some(2 * 65536),
        ..Default::default()
    });
    let grower = f.instance(
        r#"(module
          (memory 1)
          (func (export "grow") (result i32) (memory.grow (i32.const 5))))"#,
        vec![],
    );
    // The limit refuses the grow: the guest sees -1, the call succeeds.
    assert_eq!(
        outs_i32(&f.call(1, &grower, "grow", i32s(&[])).unwrap()),
        vec![-1]
    );

    // Resolving imports on the idle store (as `Instance.new` may, before it
    // starts the instantiation): a global given a value of the wrong type.
    let m = module(&f.engine, r#"(module (import "env" "g" (global i32)))"#);
    let e = err_of(f.store.with_idle(|s| {
        imports::resolve(
            &f.engine,
            f.store.id,
            s,
            &m,
            &[ImportSpec::DefineGlobal {
                ty: ValType::I32,
                mutable: false,
                value: Arg::Val(Val::I64(1)),
            }],
        )
    }));
    assert_eq!(e.kind, Kind::Link, "{}", e.message);
}
