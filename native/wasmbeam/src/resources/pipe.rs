//! A WASI stdin pipe as an Elixir resource (`Wasmbeam.Wasi.Pipe`).

use std::sync::Arc;
use wasmbeam_runtime::driver::wasi_io::Pipe;

pub struct PipeResource {
    pub pipe: Arc<Pipe>,
}

#[rustler::resource_impl]
impl rustler::Resource for PipeResource {}
