//! Host calls: the guest calls an import implemented "in Elixir"; the
//! driving process answers it, acts on the guest through its caller, and
//! calls back into the guest from inside the host call.

use crate::common::*;
use std::sync::Arc;
use wasmbeam_runtime::driver::engine::EngineCore;
use wasmbeam_runtime::driver::error::{msg, Kind, WbError};
use wasmbeam_runtime::driver::host_slot::{Answer, HostArgs, Op, OpResult, ResultTypes};
use wasmbeam_runtime::driver::store::{Begin, Outcome, RunOptions};
use wasmbeam_runtime::driver::values::{Arg, Out};
use wasmtime::{Val, ValType};

const HOST: &str = r#"(module
  (import "env" "h" (func $h (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $g (export "g") (mut i32) (i32.const 42))
  (func (export "f") (param i32) (result i32)
    local.get 0 call $h i32.const 1 i32.add)
  (func (export "twice") (result i32)
    i32.const 1 call $h
    i32.const 2 call $h
    i32.add)
  (func (export "read_g") (result i32) global.get $g)
  (func (export "spin") (loop br 0)))"#;

fn host_h() -> Vec<wasmbeam_runtime::domain::imports::ImportSpec> {
    vec![host(0, "env.h", &[ValType::I32], &[ValType::I32])]
}

/// Starts `name(args)` as `token` and returns its first host call.
fn first_host_call(
    f: &Fixture,
    token: u64,
    instance: &wasmtime::Instance,
    name: &str,
    args: &[i32],
) -> wasmbeam_runtime::driver::host_slot::HostRequest {
    let (func, sig) = f.export(instance, name);
    let begin = start_call(
        &f.store,
        token,
        &RunOptions::default(),
        &f.cx,
        func,
        &sig,
        i32s(args),
    )
    .expect("start");
    expect_host_call(settle(&f.store, token, &f.cx, polled(begin)))
}

#[test]
fn a_host_call_is_answered_with_values() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let request = first_host_call(&f, 1, &instance, "f", &[5]);
    assert_eq!(request.registry, REGISTRY);
    assert_eq!(request.index, 0);
    assert_eq!(args_i32(&request.args), vec![5]);

    let polled = answer_values(&f.store, 1, request.id, i32s(&[100]), &f.cx).expect("answer");
    let outcome = expect_done(settle(&f.store, 1, &f.cx, polled)).expect("result");
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![101]);

    // A second call makes a host call with a fresh id.
    let again = first_host_call(&f, 1, &instance, "f", &[6]);
    assert_ne!(again.id, request.id);
    let polled = answer_values(&f.store, 1, again.id, i32s(&[0]), &f.cx).unwrap();
    let outcome = expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![1]);
}

#[test]
fn a_failed_answer_traps_with_the_import_name() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let request = first_host_call(&f, 1, &instance, "f", &[5]);
    let polled = answer_failed(&f.store, 1, request.id, "the handler blew up", &f.cx).unwrap();
    let e = err_of(expect_done(settle(&f.store, 1, &f.cx, polled)));
    assert_eq!(e.kind, Kind::Trap);
    assert!(e.message.contains("env.h"), "{}", e.message);
    assert!(e.message.contains("the handler blew up"), "{}", e.message);

    // The store is usable, and the next host call works.
    assert!(f.store.usable());
    let request = first_host_call(&f, 1, &instance, "f", &[1]);
    let polled = answer_values(&f.store, 1, request.id, i32s(&[1]), &f.cx).unwrap();
    let outcome = expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![2]);
}

#[test]
fn sequential_host_calls_of_one_run_are_answered_in_turn() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let first = first_host_call(&f, 1, &instance, "twice", &[]);
    assert_eq!(args_i32(&first.args), vec![1]);
    let polled = answer_values(&f.store, 1, first.id, i32s(&[10]), &f.cx).unwrap();
    let second = expect_host_call(settle(&f.store, 1, &f.cx, polled));
    assert_eq!(args_i32(&second.args), vec![2]);
    // The first host call has returned: answering it again is refused.
    let e = err_of(answer_values(&f.store, 1, first.id, i32s(&[0]), &f.cx));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (Kind::Argument, msg::CALLER_GONE)
    );
    let polled = answer_values(&f.store, 1, second.id, i32s(&[20]), &f.cx).unwrap();
    let outcome = expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![30]);
}

#[test]
fn a_nested_call_through_the_caller_makes_its_own_host_call_answered_in_order() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let outer = first_host_call(&f, 1, &instance, "f", &[1]);
    assert_eq!(args_i32(&outer.args), vec![1]);

    // The handler resolves `f` through its caller and calls it.
    let (func, sig) = match f
        .store
        .caller_lookup(1, outer.id, Op::ResolveFunc { name: "f".into() }, &f.cx)
        .expect("resolve")
    {
        OpResult::Func(func, sig) => (func, sig),
        _ => panic!("expected a function"),
    };
    assert_eq!(sig.params.len(), 1);
    assert!(ValType::eq(&sig.params[0], &ValType::I32));
    let polled = f
        .store
        .caller_op(
            1,
            outer.id,
            Op::Call {
                func,
                args: i32s(&[2]),
                results: 1,
            },
            &f.cx,
        )
        .expect("nested call");
    let inner = expect_host_call(settle(&f.store, 1, &f.cx, polled));
    assert_ne!(inner.id, outer.id);
    assert_eq!(args_i32(&inner.args), vec![2]);

    // While the inner host call is pending, the outer caller is not the
    // innermost: its operations are refused (the store is not touched).
    let e = err_of(f.store.caller_lookup(
        1,
        outer.id,
        Op::MemorySize {
            memory: "memory".into(),
        },
        &f.cx,
    ));
    assert_eq!(e.kind, Kind::Busy);

    // Inner first: the nested call returns 20 + 1 to the outer handler.
    let polled = answer_values(&f.store, 1, inner.id, i32s(&[20]), &f.cx).unwrap();
    match expect_op_done(settle(&f.store, 1, &f.cx, polled)) {
        OpResult::Values(outs) => assert_eq!(outs_i32(&outs), vec![21]),
        _ => panic!("expected the nested call's values"),
    }
    // Then the outer host call: f(1) = h(1) + 1.
    let polled = answer_values(&f.store, 1, outer.id, i32s(&[300]), &f.cx).unwrap();
    let outcome = expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![301]);
}

/// Starts `f(1)` with `opts`, calls `spin` through the host call's caller
/// and returns the nested call's error, then the whole call's.
fn nested_spin(f: &Fixture, opts: &RunOptions) -> (WbError, WbError) {
    let instance = f.instance(HOST, host_h());
    let (func, sig) = f.export(&instance, "f");
    let (spin, _) = f.export(&instance, "spin");
    let begin = start_call(&f.store, 1, opts, &f.cx, func, &sig, i32s(&[1])).unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));
    let polled = f
        .store
        .caller_op(
            1,
            request.id,
            Op::Call {
                func: spin,
                args: i32s(&[]),
                results: 0,
            },
            &f.cx,
        )
        .unwrap();
    let nested = match expect_op_done(settle(&f.store, 1, &f.cx, polled)) {
        OpResult::Error(e) => e,
        _ => panic!("the nested call cannot succeed"),
    };
    // The handler answers normally: the call still ends as the nested one did.
    let polled = answer_values(&f.store, 1, request.id, i32s(&[5]), &f.cx).unwrap();
    let whole = err_of(expect_done(settle(&f.store, 1, &f.cx, polled)));
    assert!(f.store.usable());
    (nested, whole)
}

#[test]
fn a_deadline_passed_in_a_nested_call_ends_the_whole_call() {
    let f = Fixture::new(&engine());
    let (nested, whole) = nested_spin(
        &f,
        &RunOptions {
            timeout: Some(100),
            ..Default::default()
        },
    );
    assert_eq!(nested.kind, Kind::Timeout);
    assert_eq!(whole.kind, Kind::Timeout);
}

#[test]
fn fuel_used_up_in_a_nested_call_ends_the_whole_call() {
    let f = Fixture::new(&engine_with(true, true));
    let (nested, whole) = nested_spin(
        &f,
        &RunOptions {
            fuel: Some(100_000),
            ..Default::default()
        },
    );
    assert_eq!(nested.kind, Kind::OutOfFuel);
    assert_eq!(whole.kind, Kind::OutOfFuel);
}

#[test]
fn caller_lookups_read_and_write_the_calling_instance() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let request = first_host_call(&f, 1, &instance, "f", &[0]);
    let id = request.id;
    let lookup = |op| f.store.caller_lookup(1, id, op, &f.cx).expect("lookup");

    match lookup(Op::MemorySize {
        memory: "memory".into(),
    }) {
        OpResult::Size(bytes, pages) => assert_eq!((bytes, pages), (65536, 1)),
        _ => panic!("expected a size"),
    }
    match lookup(Op::GlobalGet { name: "g".into() }) {
        OpResult::Value(Out::Val(Val::I32(v))) => assert_eq!(v, 42),
        _ => panic!("expected an i32"),
    }
    match lookup(Op::GlobalType { name: "g".into() }) {
        OpResult::GlobalType(ty, mutable) => {
            assert!(ValType::eq(&ty, &ValType::I32));
            assert!(mutable);
        }
        _ => panic!("expected a global type"),
    }
    assert!(matches!(
        lookup(Op::GlobalSet {
            name: "g".into(),
            value: Arg::Val(Val::I32(7)),
        }),
        OpResult::Unit
    ));
    assert!(matches!(
        lookup(Op::MemoryWrite {
            memory: "memory".into(),
            offset: 10,
            bytes: vec![1, 2, 3],
        }),
        OpResult::Unit
    ));
    match lookup(Op::MemoryRead {
        memory: "memory".into(),
        offset: 10,
        len: 3,
    }) {
        OpResult::Bytes(b) => assert_eq!(b, vec![1, 2, 3]),
        _ => panic!("expected bytes"),
    }
    match lookup(Op::MemoryRead {
        memory: "memory".into(),
        offset: 65535,
        len: 2,
    }) {
        OpResult::Error(e) => assert_eq!(e.kind, Kind::Argument),
        _ => panic!("expected an out-of-bounds error"),
    }
    match lookup(Op::GlobalGet {
        name: "nope".into(),
    }) {
        OpResult::Error(e) => assert_eq!(e.kind, Kind::NotFound),
        _ => panic!("expected not found"),
    }
    match lookup(Op::GlobalSet {
        name: "g".into(),
        value: Arg::Val(Val::I64(1)),
    }) {
        OpResult::Error(e) => assert_eq!(e.kind, Kind::Type),
        _ => panic!("expected a type error"),
    }
    match lookup(Op::Fuel) {
        OpResult::Error(e) => assert_eq!(
            (e.kind, e.message.as_str()),
            (Kind::Argument, msg::FUEL_DISABLED)
        ),
        _ => panic!("fuel is disabled on this engine"),
    }

    let polled = answer_values(&f.store, 1, id, i32s(&[0]), &f.cx).unwrap();
    expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    // The global keeps what the handler set, the memory what it wrote.
    assert_eq!(
        outs_i32(&f.call(1, &instance, "read_g", i32s(&[])).unwrap()),
        vec![7]
    );
    // And a caller whose host call returned is refused.
    let e = err_of(f.store.caller_lookup(1, id, Op::Fuel, &f.cx));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (Kind::Argument, msg::CALLER_GONE)
    );
}

#[test]
fn an_answer_out_of_turn_stops_the_run_on_the_reaper() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let (func, _) = f.export(&instance, "f");
    let outer = first_host_call(&f, 1, &instance, "f", &[1]);
    let polled = f
        .store
        .caller_op(
            1,
            outer.id,
            Op::Call {
                func,
                args: i32s(&[2]),
                results: 1,
            },
            &f.cx,
        )
        .unwrap();
    let inner = expect_host_call(settle(&f.store, 1, &f.cx, polled));
    let waiter = Cx::default();
    assert!(matches!(
        f.store.start(
            9,
            &RunOptions {
                wait: true,
                ..Default::default()
            },
            &waiter,
            |_| unreachable!("the store is busy")
        ),
        Ok(Begin::Queued)
    ));

    // The outer handler answers while its nested call waits on `inner`.
    let e = err_of(answer_values(&f.store, 1, outer.id, i32s(&[0]), &f.cx));
    assert_eq!(e.kind, Kind::Trap);
    assert!(e.message.contains("env.h"), "{}", e.message);
    assert!(e.message.contains(msg::CANCELLED), "{}", e.message);

    // The reaper stops the run and frees the waiter through the store's events.
    let (waiters, thread) = f.events.free.recv_timeout(WAIT).expect("store_free");
    assert_eq!(waiters, vec![9]);
    assert_eq!(thread.as_deref(), Some("wasmbeam-reaper"));
    assert!(f.cx.freed().is_empty());
    let e = err_of(answer_values(&f.store, 1, inner.id, i32s(&[0]), &f.cx));
    assert_eq!(e.kind, Kind::Argument);

    assert!(f.store.usable());
    let request = first_host_call(&f, 9, &instance, "f", &[3]);
    let polled = answer_values(&f.store, 9, request.id, i32s(&[3]), &f.cx).unwrap();
    let outcome = expect_done(settle(&f.store, 9, &f.cx, polled)).unwrap();
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![4]);
}

#[test]
fn a_host_function_without_a_typed_path_round_trips_its_values() {
    let wat = r#"(module
      (import "env" "wide" (func $w (param i32 i64 f64) (result i64 i32)))
      (func (export "g") (result i64 i32)
        i32.const 1 i64.const 2 f64.const 3.5 call $w))"#;
    let f = Fixture::new(&engine());
    let instance = f.instance(
        wat,
        vec![host(
            3,
            "env.wide",
            &[ValType::I32, ValType::I64, ValType::F64],
            &[ValType::I64, ValType::I32],
        )],
    );
    let (g, sig) = f.export(&instance, "g");
    let begin = start_call(
        &f.store,
        1,
        &RunOptions::default(),
        &f.cx,
        g,
        &sig,
        i32s(&[]),
    )
    .unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));
    assert_eq!(request.index, 3);
    let HostArgs::Core(args) = &request.args else {
        panic!("a core host call")
    };
    match args.as_slice() {
        [Out::Val(Val::I32(1)), Out::Val(Val::I64(2)), Out::Val(Val::F64(bits))] => {
            assert_eq!(f64::from_bits(*bits), 3.5)
        }
        _ => panic!("unexpected host call arguments"),
    }
    let mut seen_types = Vec::new();
    let polled = f
        .store
        .answer(
            1,
            request.id,
            |types| {
                if let ResultTypes::Core(types) = types {
                    seen_types = types.to_vec();
                }
                Answer::Values(
                    [Arg::Val(Val::I64(-9)), Arg::Val(Val::I32(8))]
                        .into_iter()
                        .collect(),
                )
            },
            &f.cx,
        )
        .unwrap();
    // `decode` is given the import's result types.
    assert_eq!(seen_types.len(), 2);
    assert!(ValType::eq(&seen_types[0], &ValType::I64));
    match expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap() {
        Outcome::Values(outs) => match outs.as_slice() {
            [Out::Val(Val::I64(-9)), Out::Val(Val::I32(8))] => {}
            _ => panic!("unexpected results"),
        },
        _ => panic!("expected values"),
    }
}

#[test]
fn a_wrong_answer_to_a_typed_host_function_is_contained() {
    // `Answer::Values` is trusted to fit the result types (the NIF decodes
    // against them). If it does not, the typed path panics on the guest's
    // fiber: the driver reports a panic and poisons the store, never
    // unwinding into its caller.
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let request = first_host_call(&f, 1, &instance, "f", &[5]);
    let polled = answer_values(&f.store, 1, request.id, i32s(&[]), &f.cx).unwrap();
    let e = err_of(expect_done(settle(&f.store, 1, &f.cx, polled)));
    assert_eq!(e.kind, Kind::Panic);
    assert!(!f.store.usable());
}

#[test]
fn a_stale_caller_is_gone_even_while_another_host_call_is_pending() {
    let f = Fixture::new(&engine());
    let instance = f.instance(HOST, host_h());
    let first = first_host_call(&f, 1, &instance, "twice", &[]);
    let polled = answer_values(&f.store, 1, first.id, i32s(&[10]), &f.cx).unwrap();
    let _second = expect_host_call(settle(&f.store, 1, &f.cx, polled));
    // `first` returned; its caller is gone (like `answer` says for it).
    let e = err_of(f.store.caller_lookup(1, first.id, Op::Fuel, &f.cx));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (Kind::Argument, msg::CALLER_GONE)
    );
}

#[test]
fn a_failed_answer_is_a_trap_even_without_wasm_backtraces() {
    let mut config = wasmtime::Config::new();
    config
        .epoch_interruption(true)
        .wasm_backtrace_max_frames(None);
    let engine = Arc::new(EngineCore::new(
        wasmtime::Engine::new(&config).unwrap(),
        false,
        true,
        false,
    ));
    let f = Fixture::new(&engine);
    let instance = f.instance(HOST, host_h());
    let request = first_host_call(&f, 1, &instance, "f", &[5]);
    let polled = answer_failed(&f.store, 1, request.id, "the handler blew up", &f.cx).unwrap();
    let e = err_of(expect_done(settle(&f.store, 1, &f.cx, polled)));
    assert_eq!(e.kind, Kind::Trap, "{}", e.message);
}
