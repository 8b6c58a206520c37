//! Stopping runs: `cancel` by the driving process (on a dirty scheduler in
//! the NIF), and `driver_down` when the driving process died (the run goes
//! to the reaper thread).

use crate::common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use wasmbeam_runtime::driver::error::{msg, Kind};
use wasmbeam_runtime::driver::host_slot::{Op, OpResult};
use wasmbeam_runtime::driver::store::{Begin, Cancelled, RunFuture, RunOptions, Step};
use wasmbeam_runtime::driver::wasi_io::{Pipe, SinkMode};
use wasmtime::ValType;

const GUEST: &str = r#"(module
  (import "env" "h" (func $h (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "f") (param i32) (result i32) local.get 0 call $h)
  (func (export "spin") (loop br 0))
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))"#;

fn guest(f: &Fixture) -> wasmtime::Instance {
    f.instance(
        GUEST,
        vec![host(0, "env.h", &[ValType::I32], &[ValType::I32])],
    )
}

fn queue(f: &Fixture, token: u64) {
    let cx = Cx::default();
    let begin = f.store.start(
        token,
        &RunOptions {
            wait: true,
            ..Default::default()
        },
        &cx,
        |_| unreachable!("the store is busy"),
    );
    assert!(matches!(begin, Ok(Begin::Queued)));
}

/// Calls `f(n)` as `token` and answers its host call with `n`.
fn round_trip(f: &Fixture, instance: &wasmtime::Instance, token: u64, n: i32) -> i32 {
    let (func, sig) = f.export(instance, "f");
    let begin = start_call(
        &f.store,
        token,
        &RunOptions::default(),
        &f.cx,
        func,
        &sig,
        i32s(&[n]),
    )
    .unwrap();
    let request = expect_host_call(settle(&f.store, token, &f.cx, polled(begin)));
    let polled = answer_values(&f.store, token, request.id, i32s(&[n]), &f.cx).unwrap();
    let outs = values(expect_done(settle(&f.store, token, &f.cx, polled)).unwrap()).unwrap();
    as_i32(&outs[0])
}

#[test]
fn cancel_stops_a_spinning_guest_and_keeps_the_store() {
    let f = Fixture::new(&engine());
    let instance = guest(&f);
    let (spin, sig) = f.export(&instance, "spin");
    let begin = start_call(
        &f.store,
        1,
        &RunOptions::default(),
        &f.cx,
        spin,
        &sig,
        i32s(&[]),
    )
    .unwrap();
    // A guest that never ends only comes back at a tick.
    assert!(matches!(polled(begin).step, Step::Continue));
    queue(&f, 5);

    let cx = Cx::default();
    assert_eq!(
        f.store.cancel(Some(1), &cx).expect("cancel"),
        Cancelled::Stopped
    );
    assert_eq!(cx.freed(), vec![5]);
    assert!(f.store.usable());
    assert_eq!(
        outs_i32(&f.call(5, &instance, "add", i32s(&[2, 2])).unwrap()),
        vec![4]
    );
    // The cancelled run left nothing behind: nothing to resume.
    assert_eq!(err_of(f.store.resume(1, &f.cx)).kind, Kind::Argument);
}

#[test]
fn cancel_stops_a_guest_parked_in_a_host_call() {
    let f = Fixture::new(&engine());
    let instance = guest(&f);
    let (func, sig) = f.export(&instance, "f");
    let begin = start_call(
        &f.store,
        1,
        &RunOptions::default(),
        &f.cx,
        func,
        &sig,
        i32s(&[3]),
    )
    .unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));

    assert_eq!(
        f.store.cancel(Some(1), &f.cx).expect("cancel"),
        Cancelled::Stopped
    );
    assert!(f.store.usable());
    // The host call is gone with its run.
    let e = err_of(answer_values(&f.store, 1, request.id, i32s(&[0]), &f.cx));
    assert_eq!(
        (e.kind, e.message.as_str()),
        (Kind::Argument, msg::CALLER_GONE)
    );
    assert_eq!(round_trip(&f, &instance, 1, 8), 8);
}

#[test]
fn only_the_driver_may_cancel_and_an_idle_store_has_nothing_to_cancel() {
    let f = Fixture::new(&engine());
    let instance = guest(&f);
    assert_eq!(
        f.store.cancel(Some(1), &f.cx).expect("cancel"),
        Cancelled::Idle
    );

    let (func, sig) = f.export(&instance, "f");
    let begin = start_call(
        &f.store,
        1,
        &RunOptions::default(),
        &f.cx,
        func,
        &sig,
        i32s(&[3]),
    )
    .unwrap();
    let request = expect_host_call(settle(&f.store, 1, &f.cx, polled(begin)));
    let e = err_of(f.store.cancel(Some(2), &f.cx));
    assert_eq!(e.kind, Kind::Argument);
    // Nor does another process dying touch the run.
    f.store.driver_down(2);

    // The run goes on.
    let polled = answer_values(&f.store, 1, request.id, i32s(&[30]), &f.cx).unwrap();
    let outs = values(expect_done(settle(&f.store, 1, &f.cx, polled)).unwrap()).unwrap();
    assert_eq!(outs_i32(&outs), vec![30]);
    assert_eq!(
        f.store.cancel(Some(1), &f.cx).expect("cancel"),
        Cancelled::Idle
    );
}

#[test]
fn a_guest_parked_on_an_empty_open_pipe_cannot_be_stopped_and_poisons_the_store() {
    let pipe = Arc::new(Pipe::default());
    let (f, instance, _) = wasi_fixture(&engine(), pipe.clone(), SinkMode::Discard);
    let (add, add_sig) = f.export(&instance, "add");
    let (read, sig) = f.export(&instance, "read");
    let begin = start_call(
        &f.store,
        1,
        &RunOptions::default(),
        &f.cx,
        read,
        &sig,
        i32s(&[]),
    )
    .unwrap();
    expect_io_wait(settle(&f.store, 1, &f.cx, polled(begin)));
    queue(&f, 5);

    let cx = Cx::default();
    let e = err_of(f.store.cancel(Some(1), &cx));
    assert_eq!(e.kind, Kind::Poisoned);
    assert!(e.message.contains(msg::NOT_STOPPABLE), "{}", e.message);
    // The waiters are told (they find out when they try again).
    assert_eq!(cx.freed(), vec![5]);
    assert!(!f.store.usable());

    let e = err_of(start_call(
        &f.store,
        5,
        &RunOptions::default(),
        &cx,
        add,
        &add_sig,
        i32s(&[1, 1]),
    ));
    assert_eq!(e.kind, Kind::Poisoned);
    assert_eq!(err_of(f.store.with_idle(|_| Ok(()))).kind, Kind::Poisoned);
    // A lost store is not "idle" to a later cancel.
    assert_eq!(err_of(f.store.cancel(Some(1), &cx)).kind, Kind::Poisoned);
    assert_eq!(err_of(f.store.wait_for(6)).kind, Kind::Poisoned);
    // The dropped run's waker is not parked any more: a write wakes nobody.
    pipe.write(b"late").unwrap();
    assert!(f.events.io.try_recv().is_err());
}

#[test]
fn driver_down_hands_a_run_fifty_host_calls_deep_to_the_reaper() {
    let f = Fixture::new(&engine());
    let instance = guest(&f);
    let (func, sig) = f.export(&instance, "f");
    let driver = 1;
    let begin = start_call(
        &f.store,
        driver,
        &RunOptions::default(),
        &f.cx,
        func,
        &sig,
        i32s(&[0]),
    )
    .unwrap();
    let mut request = expect_host_call(settle(&f.store, driver, &f.cx, polled(begin)));
    // Each handler calls `f` again through its caller: 50 nested levels.
    for depth in 1..=50 {
        let polled = f
            .store
            .caller_op(
                driver,
                request.id,
                Op::Call {
                    func,
                    args: i32s(&[depth]),
                    results: 1,
                },
                &f.cx,
            )
            .unwrap();
        request = expect_host_call(settle(&f.store, driver, &f.cx, polled));
        assert_eq!(args_i32(&request.args), vec![depth]);
    }
    queue(&f, 8);
    queue(&f, 9);

    // Called where the monitor fires: returns without stopping the run
    // itself (that happens on the reaper thread).
    f.store.driver_down(driver);
    let (waiters, thread) = f.events.free.recv_timeout(WAIT).expect("store_free");
    assert_eq!(waiters, vec![8, 9]);
    assert_eq!(thread.as_deref(), Some("wasmbeam-reaper"));
    assert!(f.cx.freed().is_empty());

    assert!(f.store.usable());
    let e = err_of(answer_values(
        &f.store,
        driver,
        request.id,
        i32s(&[0]),
        &f.cx,
    ));
    assert_eq!(e.kind, Kind::Argument);
    assert_eq!(round_trip(&f, &instance, 8, 11), 11);
    assert_eq!(
        outs_i32(&f.call(9, &instance, "add", i32s(&[4, 5])).unwrap()),
        vec![9]
    );
}

#[test]
fn driver_down_during_a_poll_by_another_process_reaps_the_run_when_it_comes_back() {
    let f = Fixture::new(&engine());
    let instance = guest(&f);
    let (func, sig) = f.export(&instance, "f");
    let driver = 1;
    let handler = 2;

    // The driver dies while the run is out of the lock, being polled by
    // the handler process: the run's future reports the death from inside
    // a poll, after the guest has done its part of it.
    let die = Arc::new(AtomicBool::new(false));
    let store = Arc::downgrade(&f.store);
    let die_in_poll = die.clone();
    let begin = f
        .store
        .start(driver, &RunOptions::default(), &f.cx, |s| {
            let mut inner = sig.run(func, s, i32s(&[0]));
            let future: RunFuture = Box::pin(std::future::poll_fn(move |cx| {
                let polled = inner.as_mut().poll(cx);
                if polled.is_pending() && die_in_poll.swap(false, Ordering::SeqCst) {
                    if let Some(store) = store.upgrade() {
                        store.driver_down(driver);
                    }
                }
                match polled {
                    Poll::Ready(done) => Poll::Ready(done),
                    Poll::Pending => Poll::Pending,
                }
            }));
            Ok(future)
        })
        .unwrap();
    let request = expect_host_call(settle(&f.store, driver, &f.cx, polled(begin)));
    queue(&f, 9);

    die.store(true, Ordering::SeqCst);
    let looked_up = f
        .store
        .caller_lookup(
            handler,
            request.id,
            Op::MemorySize {
                memory: "memory".into(),
            },
            &f.cx,
        )
        .expect("the lookup itself completed");
    assert!(matches!(looked_up, OpResult::Size(65536, 1)));

    // Back from the poll, the run went to the reaper instead of the lock.
    let (waiters, thread) = f.events.free.recv_timeout(WAIT).expect("store_free");
    assert_eq!(waiters, vec![9]);
    assert_eq!(thread.as_deref(), Some("wasmbeam-reaper"));
    let e = err_of(answer_values(
        &f.store,
        handler,
        request.id,
        i32s(&[0]),
        &f.cx,
    ));
    assert_eq!(e.kind, Kind::Argument);
    assert!(f.store.usable());
    assert_eq!(round_trip(&f, &instance, 9, 12), 12);
}
