//! WASI stdin pipes and the waker: a guest reading an empty pipe parks
//! its poller, and a write (or close) tells that poller through the
//! store's events. Stdout sinks: streamed through `Notify`, or captured.

use crate::common::*;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use wasmbeam_runtime::driver::error::Kind;
use wasmbeam_runtime::driver::host_slot::{Op, OpResult};
use wasmbeam_runtime::driver::store::{RunOptions, Step};
use wasmbeam_runtime::driver::wasi_io::{Pipe, SinkMode};

/// Starts `read` as `token` and returns its first step that is not a
/// time slice.
fn start_read(f: &Fixture, instance: &wasmtime::Instance, token: u64, opts: &RunOptions) -> Step {
    let (read, sig) = f.export(instance, "read");
    let begin = start_call(&f.store, token, opts, &f.cx, read, &sig, i32s(&[])).unwrap();
    settle(&f.store, token, &f.cx, polled(begin))
}

fn done_i32(step: Step) -> i32 {
    let outs = values(expect_done(step).expect("the run succeeds")).unwrap();
    assert_eq!(outs.len(), 1);
    as_i32(&outs[0])
}

#[test]
fn a_filled_pipe_is_read_without_waiting() {
    let (f, instance, _) = wasi_fixture(&engine(), Pipe::filled(b"abc"), SinkMode::Discard);
    assert_eq!(
        done_i32(start_read(&f, &instance, 1, &RunOptions::default())),
        3
    );
    // Then the end of the input.
    assert_eq!(
        done_i32(start_read(&f, &instance, 1, &RunOptions::default())),
        0
    );
    assert!(f.events.io.try_recv().is_err());
}

#[test]
fn a_read_of_an_empty_pipe_parks_and_a_write_wakes_the_last_poller() {
    let pipe = Arc::new(Pipe::default());
    let (f, instance, _) = wasi_fixture(&engine(), pipe.clone(), SinkMode::Discard);
    let opts = RunOptions {
        timeout: Some(600_000),
        ..Default::default()
    };
    let ms_left = expect_io_wait(start_read(&f, &instance, 1, &opts));
    assert!(matches!(ms_left, Some(ms) if ms <= 600_000));

    // Another process polls the parked run: it parks again, now for that
    // process.
    let polled = f.store.resume(2, &f.cx).unwrap();
    expect_io_wait(settle(&f.store, 2, &f.cx, polled));
    assert!(f.events.io.try_recv().is_err());

    pipe.write(b"hello").unwrap();
    // The wake is sent by `write` itself: it has happened by now.
    assert_eq!(f.events.io.try_recv(), Ok(2));
    assert_eq!(f.events.io.try_recv(), Err(TryRecvError::Empty));

    let polled = f.store.resume(2, &f.cx).unwrap();
    assert_eq!(done_i32(settle(&f.store, 2, &f.cx, polled)), 5);
    // A later write to nobody wakes nobody.
    pipe.write(b"more").unwrap();
    assert!(f.events.io.try_recv().is_err());
}

#[test]
fn a_nested_read_by_a_handler_process_wakes_the_handler_not_the_driver() {
    let pipe = Arc::new(Pipe::default());
    let (f, instance, _) = wasi_fixture(&engine(), pipe.clone(), SinkMode::Discard);
    let (outer, sig) = f.export(&instance, "outer");
    let driver = 1;
    let handler = 2;
    let begin = start_call(
        &f.store,
        driver,
        &RunOptions::default(),
        &f.cx,
        outer,
        &sig,
        i32s(&[]),
    )
    .unwrap();
    let request = expect_host_call(settle(&f.store, driver, &f.cx, polled(begin)));

    // The handler (another process) calls `read` through its caller.
    let read = match f
        .store
        .caller_lookup(
            handler,
            request.id,
            Op::ResolveFunc {
                name: "read".into(),
            },
            &f.cx,
        )
        .unwrap()
    {
        OpResult::Func(func, _) => func,
        _ => panic!("expected a function"),
    };
    let polled = f
        .store
        .caller_op(
            handler,
            request.id,
            Op::Call {
                func: read,
                args: i32s(&[]),
                results: 1,
            },
            &f.cx,
        )
        .unwrap();
    expect_io_wait(settle(&f.store, handler, &f.cx, polled));

    pipe.write(b"abc").unwrap();
    assert_eq!(f.events.io.try_recv(), Ok(handler));
    assert_eq!(f.events.io.try_recv(), Err(TryRecvError::Empty));

    let polled = f.store.resume(handler, &f.cx).unwrap();
    let n = match expect_op_done(settle(&f.store, handler, &f.cx, polled)) {
        OpResult::Values(outs) => outs_i32(&outs),
        _ => panic!("expected the nested call's values"),
    };
    assert_eq!(n, vec![3]);
    let polled = answer_values(&f.store, handler, request.id, i32s(&[n[0]]), &f.cx).unwrap();
    assert_eq!(done_i32(settle(&f.store, handler, &f.cx, polled)), 3);
}

#[test]
fn one_write_wakes_every_store_reading_a_pipe() {
    let engine = engine();
    let pipe = Arc::new(Pipe::default());
    let (a, ia, _) = wasi_fixture(&engine, pipe.clone(), SinkMode::Discard);
    let (b, ib, _) = wasi_fixture(&engine, pipe.clone(), SinkMode::Discard);
    expect_io_wait(start_read(&a, &ia, 11, &RunOptions::default()));
    expect_io_wait(start_read(&b, &ib, 12, &RunOptions::default()));

    pipe.write(b"xy").unwrap();
    assert_eq!(a.events.io.try_recv(), Ok(11));
    assert_eq!(b.events.io.try_recv(), Ok(12));

    // The first to poll gets the bytes; the other parks again.
    let polled = a.store.resume(11, &a.cx).unwrap();
    assert_eq!(done_i32(settle(&a.store, 11, &a.cx, polled)), 2);
    let polled = b.store.resume(12, &b.cx).unwrap();
    expect_io_wait(settle(&b.store, 12, &b.cx, polled));

    pipe.close();
    assert_eq!(b.events.io.try_recv(), Ok(12));
    let polled = b.store.resume(12, &b.cx).unwrap();
    assert_eq!(done_i32(settle(&b.store, 12, &b.cx, polled)), 0);
    assert!(a.events.io.try_recv().is_err());
}

#[test]
fn closing_a_pipe_wakes_every_reader() {
    let engine = engine();
    let pipe = Arc::new(Pipe::default());
    let (a, ia, _) = wasi_fixture(&engine, pipe.clone(), SinkMode::Discard);
    let (b, ib, _) = wasi_fixture(&engine, pipe.clone(), SinkMode::Discard);
    expect_io_wait(start_read(&a, &ia, 21, &RunOptions::default()));
    expect_io_wait(start_read(&b, &ib, 22, &RunOptions::default()));

    pipe.close();
    assert_eq!(a.events.io.try_recv(), Ok(21));
    assert_eq!(b.events.io.try_recv(), Ok(22));
    for (f, token) in [(&a, 21), (&b, 22)] {
        let polled = f.store.resume(token, &f.cx).unwrap();
        assert_eq!(done_i32(settle(&f.store, token, &f.cx, polled)), 0);
    }
    assert_eq!(err_of(pipe.write(b"late")).kind, Kind::Argument);
}

#[test]
fn streamed_stdout_is_handed_to_the_poller() {
    let (f, instance, _) = wasi_fixture(
        &engine(),
        Pipe::filled(b""),
        SinkMode::Stream { limit: None },
    );
    let errno = as_i32(&f.call(1, &instance, "hello", i32s(&[])).unwrap()[0]);
    assert_eq!(errno, 0);
    assert_eq!(f.cx.stdout.lock().unwrap().as_slice(), b"hello\n");
    // Not through the store's events: a poll by a process has its Notify.
    assert!(f.events.streamed.try_recv().is_err());
}

#[test]
fn captured_stdout_is_kept_up_to_its_limit() {
    let (f, instance, stdout) =
        wasi_fixture(&engine(), Pipe::filled(b""), SinkMode::Capture { limit: 8 });
    let errno = as_i32(&f.call(1, &instance, "hello", i32s(&[])).unwrap()[0]);
    assert_eq!(errno, 0);
    assert!(f.cx.stdout.lock().unwrap().is_empty());
    // The second "hello\n" passes the 8-byte limit: the guest traps.
    let e = err_of(f.call(1, &instance, "hello", i32s(&[])));
    assert_eq!(e.kind, Kind::Trap);
    assert!(e.message.contains("capture limit"), "{}", e.message);
    assert_eq!(stdout.take_captured(), b"hello\n");
    assert!(f.store.usable());
}
