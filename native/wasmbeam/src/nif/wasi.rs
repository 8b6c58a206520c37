//! WASI preview 1 for core modules, with nothing granted by default: a
//! store gets a context with exactly what `Wasmbeam.Wasi.Options` grants
//! (see `wasmbeam_runtime::driver::wasi_io`), and stdin pipes are written
//! and closed from Elixir.

use crate::handle;
use crate::nif::error::{guarded, reply};
use crate::nif::handle_arg::Handle;
use crate::resources::atoms;
use crate::resources::pipe::PipeResource;
use crate::resources::store::{StoreResource, StreamTarget, StreamTargets};
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, NifMap, ResourceArc, Term};
use std::net::IpAddr;
use std::sync::Arc;
use wasmbeam_runtime::driver::error::{Kind, WbError, WbResult};
use wasmbeam_runtime::driver::wasi_io::{
    build_context, NetGrant, NetUse, Pipe, Sink, SinkMode, WasiGrants, WasiShared,
};

#[rustler::nif]
fn wasi_pipe_new(env: Env) -> Term {
    ResourceArc::new(PipeResource {
        pipe: Arc::new(Pipe::default()),
    })
    .encode(env)
}

#[rustler::nif]
fn wasi_pipe_write<'a>(env: Env<'a>, pipe: Handle<PipeResource>, data: Binary) -> Term<'a> {
    let pipe = handle!(env, pipe, "WASI pipe");
    guarded(env, || {
        reply(env, pipe.pipe.write(data.as_slice()).map(|()| atoms::ok()))
    })
}

#[rustler::nif]
fn wasi_pipe_close(env: Env, pipe: Handle<PipeResource>) -> Term {
    let pipe = handle!(env, pipe, "WASI pipe");
    pipe.pipe.close();
    atoms::ok().encode(env)
}

/// `Wasmbeam.Wasi.Options`, as the NIF takes it (already checked in Elixir).
#[derive(NifMap)]
pub struct WasiOptions {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// `{host_path, guest_path, writable}`
    preopens: Vec<(String, String, bool)>,
    deterministic: bool,
    random_seed: Option<u64>,
    /// `{use, ip_bytes, prefix, first_port, last_port}`, `use` one of
    /// `"connect"`, `"listen"`, `"udp"`; addresses as 4 or 16 bytes.
    network: Vec<(String, Vec<u8>, u8, u16, u16)>,
    ip_name_lookup: bool,
}

fn decode_network(items: Vec<(String, Vec<u8>, u8, u16, u16)>) -> WbResult<Vec<NetGrant>> {
    items
        .into_iter()
        .map(|(what, ip, prefix, first, last)| {
            let net_use = match what.as_str() {
                "connect" => NetUse::Connect,
                "listen" => NetUse::Listen,
                "udp" => NetUse::Udp,
                _ => {
                    return Err(WbError::new(
                        Kind::Argument,
                        format!("no network use {what:?}"),
                    ))
                }
            };
            let ip = match ip.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(ip.as_slice()).unwrap_or_default()),
                16 => IpAddr::from(<[u8; 16]>::try_from(ip.as_slice()).unwrap_or_default()),
                n => {
                    return Err(WbError::new(
                        Kind::Argument,
                        format!("an address has 4 or 16 bytes, not {n}"),
                    ))
                }
            };
            Ok(NetGrant {
                net_use,
                ip,
                prefix,
                ports: (first, last),
            })
        })
        .collect()
}

/// `:discard`, `{:capture, limit}` or `{:stream, pid, tag, limit | :infinity}`.
fn decode_sink(term: Term, name: &'static str) -> WbResult<(Arc<Sink>, Option<StreamTarget>)> {
    let bad = || {
        WbError::new(
            Kind::Argument,
            format!("{name} must be :discard, {{:capture, limit}} or {{:stream, pid, tag, limit}}"),
        )
    };
    if let Ok(atom) = term.decode::<rustler::Atom>() {
        return if atom == atoms::discard() {
            Ok((Sink::new(name, SinkMode::Discard), None))
        } else {
            Err(bad())
        };
    }
    let items = rustler::types::tuple::get_tuple(term).map_err(|_| bad())?;
    let tag: rustler::Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
    match items.len() {
        2 if tag == atoms::capture() => {
            let limit: usize = items[1].decode().map_err(|_| bad())?;
            Ok((Sink::new(name, SinkMode::Capture { limit }), None))
        }
        4 if tag == atoms::stream() => {
            let pid: LocalPid = items[1].decode().map_err(|_| bad())?;
            let target = StreamTarget::new(pid, items[2]);
            let limit: Option<u64> =
                if items[3].decode::<rustler::Atom>().ok() == Some(atoms::infinity()) {
                    None
                } else {
                    Some(items[3].decode().map_err(|_| bad())?)
                };
            Ok((Sink::new(name, SinkMode::Stream { limit }), Some(target)))
        }
        _ => Err(bad()),
    }
}

/// `nil`, a binary, or a `%Wasmbeam.Wasi.Pipe{}`'s resource. One pipe may
/// be the stdin of several stores: every reader waiting on it is woken.
fn decode_stdin(term: Term) -> WbResult<Arc<Pipe>> {
    if let Ok(pipe) = term.decode::<ResourceArc<PipeResource>>() {
        return Ok(pipe.pipe.clone());
    }
    if let Ok(bin) = term.decode::<Binary>() {
        return Ok(Pipe::filled(bin.as_slice()));
    }
    if term.decode::<rustler::Atom>().ok() == Some(atoms::nil()) {
        return Ok(Pipe::filled(&[]));
    }
    Err(WbError::new(
        Kind::Argument,
        "stdin must be nil, a binary or a %Wasmbeam.Wasi.Pipe{}",
    ))
}

/// Gives `store` a WASI context. A store has at most one.
#[rustler::nif]
fn store_set_wasi<'a>(
    env: Env<'a>,
    store: Handle<StoreResource>,
    options: WasiOptions,
    stdin: Term<'a>,
    stdout: Term<'a>,
    stderr: Term<'a>,
) -> Term<'a> {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let result = (|| {
            let stdin = decode_stdin(stdin)?;
            let (stdout, stdout_target) = decode_sink(stdout, "stdout")?;
            let (stderr, stderr_target) = decode_sink(stderr, "stderr")?;
            let grants = WasiGrants {
                args: options.args,
                env: options.env,
                preopens: options.preopens,
                deterministic: options.deterministic,
                random_seed: options.random_seed,
                network: decode_network(options.network)?,
                ip_name_lookup: options.ip_name_lookup,
            };
            let ctx = build_context(&grants, stdin, &stdout, &stderr)?;
            store
                .core
                .set_wasi(ctx, Arc::new(WasiShared { stdout, stderr }))?;
            let _ = store.streams.set(StreamTargets {
                stdout: stdout_target,
                stderr: stderr_target,
            });
            Ok(atoms::ok())
        })();
        reply(env, result)
    })
}

/// What the guest wrote to captured stdout and stderr since the last take.
#[rustler::nif]
fn store_wasi_output<'a>(env: Env<'a>, store: Handle<StoreResource>) -> Term<'a> {
    let store = handle!(env, store, "store");
    guarded(env, || {
        let result = match store.core.wasi.get() {
            None => Err(WbError::new(
                Kind::Argument,
                "the store has no WASI context",
            )),
            Some(shared) => {
                let encode = |bytes: Vec<u8>| -> Term<'a> {
                    let mut bin = NewBinary::new(env, bytes.len());
                    bin.as_mut_slice().copy_from_slice(&bytes);
                    Binary::from(bin).to_term(env)
                };
                Ok((
                    encode(shared.stdout.take_captured()),
                    encode(shared.stderr.take_captured()),
                ))
            }
        };
        reply(env, result)
    })
}
