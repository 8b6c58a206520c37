//! One call at a time per store: a second start is refused or queued,
//! queued processes are told when the store is free, and questions about
//! the store are answered at once while a run is out of the lock.

use crate::common::*;
use std::sync::mpsc::channel;
use wasmbeam_runtime::driver::error::{Kind, WbResult};
use wasmbeam_runtime::driver::store::{Begin, Outcome, RunFuture, RunOptions, Step};
use wasmtime::ValType;

const HOST: &str = r#"(module
  (import "env" "h" (func $h (param i32) (result i32)))
  (func (export "f") (param i32) (result i32) local.get 0 call $h)
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))"#;

fn wait(wait: bool) -> RunOptions {
    RunOptions {
        wait,
        ..Default::default()
    }
}

/// A start that must not get as far as making a run.
fn try_start(f: &Fixture, token: u64, wait_: bool, cx: &Cx) -> WbResult<Begin> {
    f.store.start(token, &wait(wait_), cx, |_| {
        unreachable!("the store is busy")
    })
}

#[test]
fn a_second_start_is_busy_or_queued_and_the_queue_is_freed_at_the_end() {
    let f = Fixture::new(&engine());
    let instance = f.instance(
        HOST,
        vec![host(0, "env.h", &[ValType::I32], &[ValType::I32])],
    );
    let (func, sig) = f.export(&instance, "f");
    let begin = start_call(&f.store, 1, &wait(false), &f.cx, func, &sig, i32s(&[4])).unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));

    let other = Cx::default();
    assert_eq!(err_of(try_start(&f, 2, false, &other)).kind, Kind::Busy);
    assert!(matches!(try_start(&f, 3, true, &other), Ok(Begin::Queued)));
    // The driver never waits for its own run (a handler calling its own
    // instance would wait for ever): busy, never queued.
    assert_eq!(err_of(try_start(&f, 1, true, &other)).kind, Kind::Busy);
    assert_eq!(err_of(f.store.wait_for(1)).kind, Kind::Busy);
    assert!(f.store.wait_for(4).expect("queue"));
    assert!(other.freed().is_empty());
    assert!(f.cx.freed().is_empty());

    // The run ends in the driver's NIF call: its Notify frees the queue.
    let polled = answer_values(&f.store, 1, request.id, i32s(&[9]), &f.cx).unwrap();
    let outcome = expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    assert_eq!(outs_i32(&values(outcome).unwrap()), vec![9]);
    assert_eq!(f.cx.freed(), vec![3, 4]);
    assert!(other.freed().is_empty());

    // The queue was emptied: the next run ending frees nobody.
    assert_eq!(
        outs_i32(&f.call(3, &instance, "add", i32s(&[1, 2])).unwrap()),
        vec![3]
    );
    assert_eq!(f.cx.freed(), vec![3, 4]);
    assert!(f.events.free.try_recv().is_err());
}

#[test]
fn an_idle_store_queues_nobody() {
    let f = Fixture::new(&engine());
    assert!(!f.store.wait_for(5).unwrap());
    assert!(f.store.usable());
}

#[test]
fn questions_are_answered_between_polls() {
    let f = Fixture::new(&engine());
    let instance = f.instance(
        HOST,
        vec![host(0, "env.h", &[ValType::I32], &[ValType::I32])],
    );
    let (func, sig) = f.export(&instance, "f");
    let begin = start_call(&f.store, 1, &wait(false), &f.cx, func, &sig, i32s(&[4])).unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));
    // The "handler" runs here, between polls.
    assert!(f.store.usable());
    assert!(f.store.wait_for(2).unwrap());
    assert_eq!(err_of(f.store.with_idle(|_| Ok(()))).kind, Kind::Busy);
    let polled = answer_values(&f.store, 1, request.id, i32s(&[0]), &f.cx).unwrap();
    expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap();
    assert_eq!(f.cx.freed(), vec![2]);
}

#[test]
fn questions_are_answered_while_the_run_is_out_being_polled() {
    let f = Fixture::new(&engine());
    let instance = f.instance(
        HOST,
        vec![host(0, "env.h", &[ValType::I32], &[ValType::I32])],
    );
    let (add, sig) = f.export(&instance, "add");

    // The run's future stops in its first poll until another thread has
    // asked the store its questions: were the state lock held during the
    // poll, that thread would block and the test would time out.
    let (polling_tx, polling_rx) = channel::<()>();
    let (go_tx, go_rx) = channel::<()>();
    let store = f.store.clone();
    let asker = std::thread::spawn(move || {
        polling_rx
            .recv_timeout(WAIT)
            .expect("the run is being polled");
        let cx = Cx::default();
        let usable = store.usable();
        let queued = store.wait_for(2);
        let busy = store
            .start(3, &RunOptions::default(), &cx, |_| unreachable!("busy"))
            .map(|_| ());
        let idle = store.with_idle(|_| Ok(()));
        let resumed = store.resume(4, &cx).map(|_| ());
        let cancelled = store.cancel(Some(4), &cx).map(|_| ());
        go_tx.send(()).unwrap();
        (usable, queued, busy, idle, resumed, cancelled)
    });

    let begin = f
        .store
        .start(1, &RunOptions::default(), &f.cx, |s| {
            let inner = sig.run(add, s, i32s(&[20, 22]));
            let future: RunFuture = Box::pin(async move {
                polling_tx.send(()).unwrap();
                go_rx.recv_timeout(WAIT).expect("the asker is done");
                inner.await
            });
            Ok(future)
        })
        .unwrap();
    let (usable, queued, busy, idle, resumed, cancelled) = asker.join().unwrap();
    assert!(usable);
    assert!(queued.unwrap());
    assert_eq!(err_of(busy).kind, Kind::Busy);
    assert_eq!(err_of(idle).kind, Kind::Busy);
    assert_eq!(err_of(resumed).kind, Kind::Busy);
    // Token 4 does not drive the run: refused before anything is touched.
    assert_eq!(err_of(cancelled).kind, Kind::Argument);

    match settle(&f.store, 1, &f.cx, polled(begin)) {
        Step::Done(Ok(Outcome::Values(outs))) => assert_eq!(outs_i32(&outs), vec![42]),
        other => panic!("unexpected {}", describe(&other)),
    }
    assert_eq!(f.cx.freed(), vec![2]);
}

#[test]
fn questions_are_answered_during_a_long_lent_operation() {
    let f = Fixture::new(&engine());
    let (lent_tx, lent_rx) = channel::<()>();
    let (go_tx, go_rx) = channel::<()>();
    let store = f.store.clone();
    let asker = std::thread::spawn(move || {
        lent_rx.recv_timeout(WAIT).expect("the store is lent");
        let cx = Cx::default();
        let usable = store.usable();
        let queued = store.wait_for(7);
        let busy = store
            .start(8, &RunOptions::default(), &cx, |_| unreachable!("busy"))
            .map(|_| ());
        let queued_start = store.start(
            9,
            &RunOptions {
                wait: true,
                ..Default::default()
            },
            &cx,
            |_| unreachable!("busy"),
        );
        let idle = store.with_idle(|_| Ok(()));
        let lent = store.with_idle_notify(&cx, |_| Ok(()));
        go_tx.send(()).unwrap();
        let queued_start = matches!(queued_start, Ok(Begin::Queued));
        (usable, queued, busy, queued_start, idle, lent, cx.freed())
    });

    let copied = f
        .store
        .with_idle_notify(&f.cx, |s| {
            lent_tx.send(()).unwrap();
            go_rx.recv_timeout(WAIT).expect("the asker is done");
            Ok(s.data().deadline.is_none())
        })
        .unwrap();
    assert!(copied);
    let (usable, queued, busy, queued_start, idle, lent, asker_freed) = asker.join().unwrap();
    assert!(usable);
    assert!(queued.unwrap());
    assert_eq!(err_of(busy).kind, Kind::Busy);
    assert!(queued_start);
    assert_eq!(err_of(idle).kind, Kind::Busy);
    assert_eq!(err_of(lent).kind, Kind::Busy);
    assert!(asker_freed.is_empty());
    // The lender's Notify frees both waiters when the store comes back.
    assert_eq!(f.cx.freed(), vec![7, 9]);
    assert!(f.store.with_idle(|_| Ok(())).is_ok());
}
