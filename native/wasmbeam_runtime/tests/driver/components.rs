//! Components on the one driver: a component's instantiation, call and
//! host call run through the store's run and its host slot, exactly as a
//! core module's do.

use crate::common::*;
use std::sync::Arc;
use wasmbeam_runtime::domain::component::{
    call_future, export_func, imported_funcs, instantiate_future, linker, result_types,
    ComponentImportSpec, ItemPath,
};
use wasmbeam_runtime::driver::error::Kind;
use wasmbeam_runtime::driver::host_slot::{
    Answer, FailureCause, HandlerFailure, HostArgs, HostImport,
};
use wasmbeam_runtime::driver::store::{Outcome, Polled, RunOptions};
use wasmtime::component::{Component, Instance, Val};

const CALC: &str = r#"
(component
  (import "log" (func $log (param "msg" u32) (result u32)))
  (core func $log_lowered (canon lower (func $log)))
  (core module $m
    (import "host" "log" (func $log (param i32) (result i32)))
    (func (export "run") (param i32) (result i32)
      local.get 0 call $log i32.const 1 i32.add)
    (func (export "spin") (loop $l br $l)))
  (core instance $i (instantiate $m (with "host" (instance (export "log" (func $log_lowered))))))
  (func (export "run") (param "x" u32) (result u32) (canon lift (core func $i "run")))
  (func (export "spin") (canon lift (core func $i "spin"))))
"#;

fn instantiate(f: &Fixture, component: &Component) -> Instance {
    let engine = &f.engine.engine;
    let specs: Vec<ComponentImportSpec> = imported_funcs(component, engine)
        .iter()
        .map(|func| ComponentImportSpec {
            path: func.path.clone(),
            import: HostImport::with_results(
                Arc::new(()),
                1,
                0,
                &func.path.to_string(),
                result_types(&func.types),
            ),
            params: func.types.params.iter().map(|(_, t)| t.clone()).collect(),
            resource: false,
        })
        .collect();
    let linker = linker(engine, component, &specs, None).expect("linker");
    let component = component.clone();
    let begin = f
        .store
        .start(1, &RunOptions::default(), &f.cx, |s| {
            Ok(instantiate_future(s, linker, component, Arc::new(())))
        })
        .expect("start");
    match expect_done(settle(&f.store, 1, &f.cx, polled(begin))).expect("instance") {
        Outcome::ComponentInstance(instance, _) => instance,
        _ => panic!("expected a component instance"),
    }
}

fn start_run(
    f: &Fixture,
    component: &Component,
    instance: &Instance,
    name: &str,
    args: Vec<Val>,
    opts: RunOptions,
) -> Polled {
    let path = ItemPath {
        interface: None,
        name: name.into(),
    };
    let (func, types) = f
        .store
        .with_idle(|s| export_func(s, component, instance, &path))
        .expect("export");
    polled(
        f.store
            .start(1, &opts, &f.cx, |s| {
                Ok(call_future(s, func, args, types.result.clone(), Vec::new()))
            })
            .expect("start"),
    )
}

#[test]
fn a_component_host_call_goes_through_the_host_slot() {
    let f = Fixture::new(&engine());
    let component = Component::new(&f.engine.engine, CALC).expect("component");
    let instance = instantiate(&f, &component);
    let first = start_run(
        &f,
        &component,
        &instance,
        "run",
        vec![Val::U32(4)],
        RunOptions::default(),
    );
    let request = expect_host_call(settle(&f.store, 1, &f.cx, first));
    match &request.args {
        HostArgs::Component(values, types, host_resources) => {
            assert_eq!(values, &vec![Val::U32(4)]);
            assert_eq!(types.len(), 1);
            assert!(host_resources.is_empty());
        }
        HostArgs::Core(_) => panic!("a core host call"),
    }
    let polled = f
        .store
        .answer(
            1,
            request.id,
            |_| Answer::Component(Some(Val::U32(40))),
            &f.cx,
        )
        .expect("answer");
    match expect_done(settle(&f.store, 1, &f.cx, polled)).expect("result") {
        Outcome::ComponentValue(Some((Val::U32(41), _))) => {}
        _ => panic!("expected 41"),
    }
}

#[test]
fn a_failed_handler_traps_and_the_store_enters_no_component_again() {
    let f = Fixture::new(&engine());
    let component = Component::new(&f.engine.engine, CALC).expect("component");
    let instance = instantiate(&f, &component);
    let first = start_run(
        &f,
        &component,
        &instance,
        "run",
        vec![Val::U32(1)],
        RunOptions::default(),
    );
    let request = expect_host_call(settle(&f.store, 1, &f.cx, first));
    let failed = Answer::Failed(HandlerFailure {
        cause: FailureCause::Handler,
        why: "no".into(),
    });
    let polled = f
        .store
        .answer(1, request.id, |_| failed, &f.cx)
        .expect("answer");
    let e = err_of(expect_done(settle(&f.store, 1, &f.cx, polled)));
    assert_eq!(e.kind, Kind::Trap);
    assert!(e.message.contains("host function log: no"), "{}", e.message);
    let again = start_run(
        &f,
        &component,
        &instance,
        "run",
        vec![Val::U32(1)],
        RunOptions::default(),
    );
    let e = err_of(expect_done(settle(&f.store, 1, &f.cx, again)));
    assert_eq!(e.trap, Some("cannot_enter_component"));
}

#[test]
fn a_component_call_is_time_sliced_and_meets_its_deadline() {
    let f = Fixture::new(&engine());
    let component = Component::new(&f.engine.engine, CALC).expect("component");
    let instance = instantiate(&f, &component);
    let opts = RunOptions {
        timeout: Some(20),
        ..RunOptions::default()
    };
    let first = start_run(&f, &component, &instance, "spin", vec![], opts);
    let (step, continues) = settle_counting(&f.store, 1, &f.cx, first);
    assert!(continues > 0, "the guest ran in slices");
    assert_eq!(err_of(expect_done(step)).kind, Kind::Timeout);
    assert!(f.store.usable());
}
