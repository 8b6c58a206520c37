//! Runs: a call from start to end, its options, its time slices, its
//! deadline, and what happens to the store when a run goes wrong.

use crate::common::*;
use std::task::Poll;
use std::time::{Duration, Instant};
use wasmbeam_runtime::domain::signature::Signature;
use wasmbeam_runtime::driver::error::{msg, Kind, WbError};
use wasmbeam_runtime::driver::store::{Begin, Outcome, RunFuture, RunOptions, Step, StoreCore};
use wasmbeam_runtime::driver::store_data::StoreLimitsSpec;
use wasmbeam_runtime::driver::values::{Arg, Out, Outs};
use wasmtime::Val;

const MIX: &str = r#"(module
  ;; Three parameters and two results: no typed path.
  (func (export "mix") (param i32 i64 f64) (result i64 i32)
    local.get 1 i64.const 10 i64.mul
    local.get 0 i32.const 3 i32.mul)
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func (export "trap") unreachable))"#;

/// A future that yields once like an epoch check does (waking its task
/// during the poll), then goes on.
fn yield_once() -> impl std::future::Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

#[test]
fn a_short_call_finishes_in_the_first_poll() {
    // Without epoch interruption the guest never yields, so "done in the
    // first poll" does not depend on when the ticker ticks.
    let f = Fixture::new(&engine_with(false, false));
    let instance = f.instance(MIX, vec![]);
    let (func, sig) = f.export(&instance, "add");
    let begin = start_call(
        &f.store,
        1,
        &RunOptions::default(),
        &f.cx,
        func,
        &sig,
        i32s(&[40, 2]),
    )
    .expect("start");
    match polled(begin).step {
        Step::Done(Ok(Outcome::Values(outs))) => assert_eq!(outs_i32(&outs), vec![42]),
        other => panic!("expected Done in the first poll, got {}", describe(&other)),
    }
    assert!(f.store.usable());
    assert!(f.cx.freed().is_empty());
}

#[test]
fn typed_and_untyped_signatures_give_the_same_results() {
    let f = Fixture::new(&engine());
    let instance = f.instance(MIX, vec![]);

    // (i32, i32) -> i32 has a typed path; the untyped signature of the same
    // function takes Wasmtime's general path.
    let (add, typed) = f.export(&instance, "add");
    let untyped = Signature::untyped(typed.types.clone());
    for sig in [&typed, &untyped] {
        let begin = start_call(
            &f.store,
            1,
            &RunOptions::default(),
            &f.cx,
            add,
            sig,
            i32s(&[-7, 10]),
        )
        .expect("start");
        let outs = values(run_plain(&f.store, 1, &f.cx, polled(begin)).expect("run")).unwrap();
        assert_eq!(outs_i32(&outs), vec![3]);
    }

    // Three parameters, two results: the general path only.
    let (mix, sig) = f.export(&instance, "mix");
    assert_eq!(sig.params().len(), 3);
    let args = [
        Arg::Val(Val::I32(5)),
        Arg::Val(Val::I64(-4)),
        Arg::Val(Val::F64(1.5f64.to_bits())),
    ]
    .into_iter()
    .collect();
    let begin =
        start_call(&f.store, 1, &RunOptions::default(), &f.cx, mix, &sig, args).expect("start");
    let outs = values(run_plain(&f.store, 1, &f.cx, polled(begin)).expect("run")).unwrap();
    match outs.as_slice() {
        [Out::Val(Val::I64(a)), Out::Val(Val::I32(b))] => assert_eq!((*a, *b), (-40, 15)),
        _ => panic!("expected (i64, i32)"),
    }
}

#[test]
fn fuel_and_timeout_options_need_their_engine_settings() {
    let plain = engine_with(false, false);
    let fuel = Some(1_000);

    let e = err_of(
        RunOptions {
            fuel,
            ..Default::default()
        }
        .check(&plain),
    );
    assert_eq!(
        (e.kind, e.message.as_str()),
        (Kind::Argument, msg::FUEL_DISABLED)
    );
    let e = err_of(
        RunOptions {
            timeout: Some(10),
            ..Default::default()
        }
        .check(&plain),
    );
    assert_eq!(
        (e.kind, e.message.as_str()),
        (Kind::Argument, msg::TIMEOUT_DISABLED)
    );
    RunOptions::default().check(&plain).expect("no options");
    let (ev, _rx) = events();
    let e = err_of(StoreCore::new(
        plain.clone(),
        &StoreLimitsSpec::default(),
        fuel,
        ev,
    ));
    assert_eq!(e.kind, Kind::Argument);

    // `start` refuses them before it touches the store.
    let f = Fixture::new(&plain);
    let instance = f.instance(MIX, vec![]);
    let (add, sig) = f.export(&instance, "add");
    for opts in [
        RunOptions {
            fuel,
            ..Default::default()
        },
        RunOptions {
            timeout: Some(10),
            ..Default::default()
        },
    ] {
        let e = err_of(start_call(
            &f.store,
            1,
            &opts,
            &f.cx,
            add,
            &sig,
            i32s(&[1, 2]),
        ));
        assert_eq!(e.kind, Kind::Argument);
    }
    assert_eq!(
        outs_i32(&f.call(1, &instance, "add", i32s(&[1, 2])).unwrap()),
        vec![3]
    );

    // An engine with both settings takes both.
    let both = engine_with(true, true);
    RunOptions {
        fuel,
        timeout: Some(10),
        wait: false,
    }
    .check(&both)
    .expect("both allowed");
}

#[test]
fn a_spinning_guest_yields_slice_after_slice_and_times_out_at_its_deadline() {
    let f = Fixture::new(&engine());
    let instance = f.instance(SPIN, vec![]);
    let (spin, sig) = f.export(&instance, "spin");
    let timeout = 200;
    let began = Instant::now();
    let opts = RunOptions {
        timeout: Some(timeout),
        ..Default::default()
    };
    let mut polled =
        polled(start_call(&f.store, 1, &opts, &f.cx, spin, &sig, i32s(&[])).expect("start"));
    let mut continues = 0;
    let result = loop {
        match polled.step {
            Step::Continue => {
                // A yield at a tick: the whole slice was used.
                assert!(polled.whole_slice);
                continues += 1;
                // Between slices the store answers at once.
                assert!(f.store.usable());
                polled = f.store.resume(1, &f.cx).expect("resume");
            }
            Step::Done(result) => break result,
            other => panic!("unexpected {}", describe(&other)),
        }
    };
    let e = err_of(result);
    assert_eq!(e.kind, Kind::Timeout);
    assert_eq!(e.message, msg::TIMEOUT);
    assert!(continues >= 1, "the guest never yielded");
    // The deadline is checked against the clock: never before it.
    assert!(began.elapsed() >= Duration::from_millis(timeout));

    // The store is idle and usable again.
    assert!(f.store.usable());
    assert_eq!(
        outs_i32(&f.call(2, &instance, "add", i32s(&[2, 3])).unwrap()),
        vec![5]
    );
}

#[test]
fn exhausted_fuel_ends_the_call_and_keeps_the_store() {
    let f = Fixture::new(&engine_with(true, true));
    let instance = f.instance(SPIN, vec![]);
    let (spin, sig) = f.export(&instance, "spin");
    let opts = RunOptions {
        fuel: Some(100_000),
        ..Default::default()
    };
    let begin = start_call(&f.store, 1, &opts, &f.cx, spin, &sig, i32s(&[])).unwrap();
    let e = err_of(run_plain(&f.store, 1, &f.cx, polled(begin)));
    assert_eq!(e.kind, Kind::OutOfFuel);
    assert_eq!(e.trap, Some("out_of_fuel"));

    let (add, sig) = f.export(&instance, "add");
    let opts = RunOptions {
        fuel: Some(1_000),
        ..Default::default()
    };
    let begin = start_call(&f.store, 1, &opts, &f.cx, add, &sig, i32s(&[1, 1])).unwrap();
    let outs = values(run_plain(&f.store, 1, &f.cx, polled(begin)).unwrap()).unwrap();
    assert_eq!(outs_i32(&outs), vec![2]);
}

#[test]
fn a_trap_is_reported_with_its_code_and_backtrace_and_keeps_the_store() {
    let f = Fixture::new(&engine());
    let instance = f.instance(MIX, vec![]);
    let e = err_of(f.call(1, &instance, "trap", i32s(&[])));
    assert_eq!(e.kind, Kind::Trap);
    assert_eq!(e.trap, Some("unreachable"));
    assert!(!e.backtrace.is_empty());
    assert!(f.store.usable());
    assert_eq!(
        outs_i32(&f.call(1, &instance, "add", i32s(&[1, 2])).unwrap()),
        vec![3]
    );
}

#[test]
fn a_make_that_gives_the_store_back_leaves_it_idle() {
    let f = Fixture::new(&engine());
    let instance = f.instance(MIX, vec![]);
    let e = err_of(f.store.start(1, &RunOptions::default(), &f.cx, |s| {
        Err((s, WbError::new(Kind::Type, "bad argument")))
    }));
    assert_eq!(e.kind, Kind::Type);
    assert_eq!(
        outs_i32(&f.call(2, &instance, "add", i32s(&[1, 2])).unwrap()),
        vec![3]
    );
}

#[test]
fn a_panic_while_polling_poisons_the_store_and_frees_its_waiters() {
    let f = Fixture::new(&engine());
    let begin = f
        .store
        .start(1, &RunOptions::default(), &f.cx, |s| {
            let future: RunFuture = Box::pin(async move {
                let s = s;
                yield_once().await;
                // Always true (no timeout): a condition only so that the
                // future's type still says it returns the store.
                if s.data().deadline.is_none() {
                    panic!("boom in the run's future");
                }
                (s, Ok(Outcome::Values(Outs::new())))
            });
            Ok(future)
        })
        .expect("start");
    assert!(matches!(polled(begin).step, Step::Continue));
    let waiter_cx = Cx::default();
    assert!(matches!(
        f.store.start(
            2,
            &RunOptions {
                wait: true,
                ..Default::default()
            },
            &waiter_cx,
            |_| { unreachable!("a busy store does not make a run") }
        ),
        Ok(Begin::Queued)
    ));

    let polled = f.store.resume(1, &f.cx).expect("resume");
    let e = err_of(expect_done(polled.step));
    assert_eq!(e.kind, Kind::Panic);
    assert!(
        e.message.contains("boom in the run's future"),
        "{}",
        e.message
    );
    assert!(!f.store.usable());
    assert_eq!(f.cx.freed(), vec![2]);
    let e = err_of(f.store.start(2, &RunOptions::default(), &waiter_cx, |_| {
        unreachable!("a poisoned store does not make a run")
    }));
    assert_eq!(e.kind, Kind::Poisoned);
}

#[test]
fn a_panic_in_a_lent_store_poisons_it() {
    let f = Fixture::new(&engine());
    let e = err_of(
        f.store
            .with_idle_notify(&f.cx, |_s| -> Result<(), WbError> {
                panic!("boom in a long copy")
            }),
    );
    assert_eq!(e.kind, Kind::Panic);
    assert!(!f.store.usable());
    assert_eq!(err_of(f.store.with_idle(|_| Ok(()))).kind, Kind::Poisoned);
}

#[test]
fn a_panic_while_making_the_run_does_not_leave_the_store_busy_for_ever() {
    let f = Fixture::new(&engine());
    let instance = f.instance(MIX, vec![]);
    let (add, sig) = f.export(&instance, "add");
    // One argument for a typed (i32, i32) signature: `Typed::run` indexes
    // past the arguments and panics inside `make`.
    let store = f.store.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        start_call(
            &store,
            1,
            &RunOptions::default(),
            &Cx::default(),
            add,
            &sig,
            i32s(&[1]),
        )
    }));
    // Either the panic is turned into an error, or it escapes; in both
    // cases the store (moved into `make` and lost) must not stay busy.
    if let Ok(result) = caught {
        assert!(result.is_err());
    }
    let e = err_of(start_call(
        &f.store,
        2,
        &RunOptions::default(),
        &f.cx,
        add,
        &sig,
        i32s(&[1, 2]),
    ));
    assert_eq!(
        e.kind,
        Kind::Poisoned,
        "the lost store answers {:?}: {}",
        e.kind,
        e.message
    );
}

#[test]
fn a_store_of_one_engine_runs_calls_one_after_another() {
    let engine = engine();
    let a = Fixture::new(&engine);
    let b = Fixture::new(&engine);
    assert_ne!(a.store.id, b.store.id);
    let ia = a.instance(MIX, vec![]);
    let ib = b.instance(MIX, vec![]);
    for i in 0..50 {
        assert_eq!(
            outs_i32(&a.call(1, &ia, "add", i32s(&[i, 1])).unwrap()),
            vec![i + 1]
        );
        assert_eq!(
            outs_i32(&b.call(1, &ib, "add", i32s(&[i, 2])).unwrap()),
            vec![i + 2]
        );
    }
}
