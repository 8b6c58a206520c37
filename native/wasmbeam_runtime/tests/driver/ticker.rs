//! The epoch ticker: one thread for every engine, that time-slices the
//! running calls of each and lets idle engines go.

use crate::common::*;
use std::time::{Duration, Instant};
use wasmbeam_runtime::driver::error::Kind;
use wasmbeam_runtime::driver::store::{RunOptions, Step};

/// The threads of this process that serve epochs.
fn ticker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "wasmbeam-epoch")
        .count()
}

/// Runs a spinning guest under a deadline; returns how many slices it
/// yielded before it timed out.
fn spin_until_timeout(f: &Fixture, timeout_ms: u64) -> usize {
    let instance = f.instance(SPIN, vec![]);
    let (spin, sig) = f.export(&instance, "spin");
    let opts = RunOptions {
        timeout: Some(timeout_ms),
        ..Default::default()
    };
    let mut polled =
        polled(start_call(&f.store, 1, &opts, &f.cx, spin, &sig, i32s(&[])).expect("start"));
    let mut slices = 0;
    loop {
        match polled.step {
            Step::Continue => {
                slices += 1;
                polled = f.store.resume(1, &f.cx).expect("resume");
            }
            Step::Done(result) => {
                assert_eq!(err_of(result).kind, Kind::Timeout);
                return slices;
            }
            other => panic!("unexpected {}", describe(&other)),
        }
    }
}

#[test]
fn many_engines_share_one_ticker_thread_and_each_is_time_sliced() {
    let engines: Vec<_> = (0..300).map(|_| engine()).collect();
    // Every engine runs a call, so every one has been served.
    for engine in engines.iter().step_by(50) {
        let f = Fixture::new(engine);
        assert!(spin_until_timeout(&f, 20) >= 1, "a guest never yielded");
    }
    // Tests of this binary make their engines with `realtime: false`: one
    // thread, however many engines (each once had a thread of its own).
    let threads = ticker_threads();
    assert!(threads <= 1, "{threads} ticker threads for 300 engines");
    // Two guests of two engines at once: both are sliced.
    std::thread::scope(|s| {
        let first = s.spawn(|| spin_until_timeout(&Fixture::new(&engines[1]), 50));
        let second = s.spawn(|| spin_until_timeout(&Fixture::new(&engines[2]), 50));
        assert!(first.join().unwrap() >= 1);
        assert!(second.join().unwrap() >= 1);
    });
}

#[test]
fn an_engine_idle_long_enough_to_be_let_go_is_served_again_by_its_next_call() {
    let engine = engine();
    let f = Fixture::new(&engine);
    assert!(spin_until_timeout(&f, 20) >= 1);
    // The ticker lets an engine go after about 20 ms without a call.
    std::thread::sleep(Duration::from_millis(100));
    let began = Instant::now();
    assert!(spin_until_timeout(&f, 50) >= 1, "no slices after idling");
    assert!(began.elapsed() < Duration::from_secs(5));
}
