//! Tables: size and element reads.

use crate::handle;
use crate::nif::error::{guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::nif::values::encode_out;
use crate::resources::handles::TableResource;
use rustler::{Env, Term};
use wasmbeam_runtime::driver::error::{Kind, WbError};
use wasmbeam_runtime::driver::values::ref_to_out;
use wasmtime::RootScope;

#[rustler::nif]
fn table_size(env: Env, table: Handle<TableResource>) -> Term {
    let table = handle!(env, table, "table");
    guarded(env, || {
        reply(
            env,
            table.store.core.with_idle(|s| Ok(table.table.size(&*s))),
        )
    })
}

#[rustler::nif]
fn table_get(env: Env, table: Handle<TableResource>, index: u64) -> Term {
    let table = handle!(env, table, "table");
    guarded(env, || {
        let out = table.store.core.with_idle(|s| {
            let mut scope = RootScope::new(&mut *s);
            let size = table.table.size(&scope);
            let element = table.table.get(&mut scope, index).ok_or_else(|| {
                WbError::new(
                    Kind::Argument,
                    format!("index {index} is out of bounds for a table of {size} element(s)"),
                )
            })?;
            Ok(ref_to_out(element, &mut scope))
        });
        reply(env, out.map(|o| encode_out(env, &o, &table.store)))
    })
}
