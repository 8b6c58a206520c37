//! WASI preview 1 for core modules, with nothing granted by default.
//!
//! A store gets a WASI context from `store_set_wasi` before a module is
//! instantiated into it; the module's `wasi_snapshot_preview1` imports that
//! Elixir did not override are then taken from Wasmtime's implementation
//! (one linker per engine). The context holds exactly what the options
//! name: arguments, environment, preopened directories (read-only or
//! read-write), stdin, stdout and stderr, clocks and randomness.
//!
//! Stdio never touches the BEAM's own file descriptors. Stdin is a
//! [`PipeResource`]: bytes given up front, or a pipe an Elixir process
//! writes to while the guest runs (a read waits without holding a thread:
//! the driving process parks until the pipe wakes it). Stdout and stderr
//! are captured into binaries, discarded, or streamed: bytes written during
//! a slice are sent to a process as messages by the driver right after it.

use crate::error::{reply, Kind, WbError, WbResult};
use crate::store::{StoreData, StoreResource, WStore};
use bytes::Bytes;
use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, NifMap, OwnedEnv, ResourceArc, Term};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime::{Extern, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtxBuilder};

// ---------------------------------------------------------------------------
// Stdin: a pipe.

#[derive(Default)]
struct PipeState {
    buf: VecDeque<u8>,
    closed: bool,
    reader: Option<Waker>,
}

/// The shared state of a pipe, between its resource and the guest's stdin.
#[derive(Default)]
pub struct Pipe {
    state: Mutex<PipeState>,
}

impl Pipe {
    fn filled(bytes: &[u8]) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe::default());
        {
            let mut s = pipe.state.lock();
            s.buf.extend(bytes);
            s.closed = true;
        }
        pipe
    }

    fn write(&self, bytes: &[u8]) -> WbResult<()> {
        let reader = {
            let mut s = self.state.lock();
            if s.closed {
                return Err(WbError::new(Kind::Argument, "the pipe is closed"));
            }
            s.buf.extend(bytes);
            s.reader.take()
        };
        if let Some(waker) = reader {
            waker.wake();
        }
        Ok(())
    }

    fn close(&self) {
        let reader = {
            let mut s = self.state.lock();
            s.closed = true;
            s.reader.take()
        };
        if let Some(waker) = reader {
            waker.wake();
        }
    }

    fn take(&self, max: usize) -> Bytes {
        let mut s = self.state.lock();
        let n = max.min(s.buf.len());
        let out: Vec<u8> = s.buf.drain(..n).collect();
        Bytes::from(out)
    }

    /// Ready when there is data or the writer closed the pipe; otherwise
    /// remembers the waker.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if !s.buf.is_empty() || s.closed {
            Poll::Ready(())
        } else {
            s.reader = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// A pipe as an Elixir resource (`Wasmbeam.Wasi.Pipe`).
pub struct PipeResource {
    pipe: Arc<Pipe>,
}

#[rustler::resource_impl]
impl rustler::Resource for PipeResource {}

/// The guest's end of a pipe.
#[derive(Clone)]
struct PipeReader(Arc<Pipe>);

#[wasmtime_wasi::async_trait]
impl Pollable for PipeReader {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.0.poll_ready(cx)).await
    }
}

impl InputStream for PipeReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let bytes = self.0.take(size);
        if bytes.is_empty() && self.0.state.lock().closed {
            Err(StreamError::Closed)
        } else {
            Ok(bytes)
        }
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.0.poll_ready(cx) {
            Poll::Ready(()) => {
                let bytes = self.0.take(buf.remaining());
                buf.put_slice(&bytes);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl IsTerminal for PipeReader {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for PipeReader {
    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[rustler::nif]
fn wasi_pipe_new(env: Env) -> Term {
    ResourceArc::new(PipeResource {
        pipe: Arc::new(Pipe::default()),
    })
    .encode(env)
}

#[rustler::nif]
fn wasi_pipe_write<'a>(env: Env<'a>, pipe: ResourceArc<PipeResource>, data: Binary) -> Term<'a> {
    reply(
        env,
        pipe.pipe
            .write(data.as_slice())
            .map(|()| crate::atoms::ok()),
    )
}

#[rustler::nif]
fn wasi_pipe_close(pipe: ResourceArc<PipeResource>) -> rustler::Atom {
    pipe.pipe.close();
    crate::atoms::ok()
}

// ---------------------------------------------------------------------------
// Stdout and stderr: sinks.

enum SinkMode {
    Discard,
    /// Keep up to `limit` bytes; writing more traps the guest.
    Capture {
        limit: usize,
    },
    /// Send what was written to `pid` after each slice.
    Stream {
        pid: LocalPid,
        env: OwnedEnv,
        tag: SavedTerm,
    },
}

pub struct Sink {
    name: &'static str,
    mode: Mutex<SinkMode>,
    buf: Mutex<Vec<u8>>,
    /// Bytes written so far (for the capture limit).
    written: AtomicU64,
}

impl Sink {
    fn new(name: &'static str, mode: SinkMode) -> Arc<Sink> {
        Arc::new(Sink {
            name,
            mode: Mutex::new(mode),
            buf: Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
        })
    }

    fn write(&self, bytes: &[u8]) -> StreamResult<()> {
        match &*self.mode.lock() {
            SinkMode::Discard => return Ok(()),
            SinkMode::Capture { limit } => {
                let total = self.written.load(Ordering::Relaxed) + bytes.len() as u64;
                if total > *limit as u64 {
                    return Err(StreamError::Trap(wasmtime::format_err!(
                        "the guest wrote more than {limit} bytes to {}, its capture limit",
                        self.name
                    )));
                }
            }
            SinkMode::Stream { .. } => {}
        }
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.buf.lock().extend_from_slice(bytes);
        Ok(())
    }

    /// Sends what a streaming sink holds to its process.
    fn flush(&self, env: Env, stream: rustler::Atom) {
        let mode = self.mode.lock();
        if let SinkMode::Stream {
            pid,
            env: owned,
            tag,
        } = &*mode
        {
            let data = std::mem::take(&mut *self.buf.lock());
            if data.is_empty() {
                return;
            }
            let tag = owned.run(|o| tag.load(o).in_env(env));
            let mut bin = NewBinary::new(env, data.len());
            bin.as_mut_slice().copy_from_slice(&data);
            let bin: Binary = bin.into();
            let _ = env.send(pid, (crate::atoms::wasmbeam_output(), tag, stream, bin));
        }
    }

    fn take(&self) -> Vec<u8> {
        match &*self.mode.lock() {
            SinkMode::Capture { .. } => std::mem::take(&mut *self.buf.lock()),
            _ => Vec::new(),
        }
    }
}

#[derive(Clone)]
struct SinkWriter(Arc<Sink>);

#[wasmtime_wasi::async_trait]
impl Pollable for SinkWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for SinkWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

impl AsyncWrite for SinkWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.0
                .write(buf)
                .map(|()| buf.len())
                .map_err(|e| std::io::Error::other(e.to_string())),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for SinkWriter {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SinkWriter {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// The parts of a store's WASI context the driver and Elixir reach while
/// the context itself is inside a running store.
pub struct WasiShared {
    stdout: Arc<Sink>,
    stderr: Arc<Sink>,
}

impl WasiShared {
    /// Streams what the guest wrote during the last slice.
    pub fn flush(&self, env: Env) {
        self.stdout.flush(env, crate::atoms::stdout());
        self.stderr.flush(env, crate::atoms::stderr());
    }
}

// ---------------------------------------------------------------------------
// Clocks for reproducible runs.

/// A clock that starts at zero and advances by a fixed step at each read,
/// so that a program sees time pass (loops waiting for it end) but sees the
/// same times on every run.
struct SteppingClock {
    now: AtomicU64,
}

const CLOCK_STEP_NS: u64 = 1_000_000;

impl SteppingClock {
    fn tick(&self) -> u64 {
        self.now.fetch_add(CLOCK_STEP_NS, Ordering::Relaxed) + CLOCK_STEP_NS
    }
}

impl HostWallClock for SteppingClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(CLOCK_STEP_NS)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.tick())
    }
}

impl HostMonotonicClock for SteppingClock {
    fn resolution(&self) -> u64 {
        CLOCK_STEP_NS
    }

    fn now(&self) -> u64 {
        self.tick()
    }
}

/// A long deterministic byte cycle from a seed (SplitMix64), for Wasmtime's
/// cycling deterministic generator.
fn seeded_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(64 * 1024);
    while out.len() < 64 * 1024 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// Building the context.

/// `Wasmbeam.Wasi.Options`, as the NIF takes it (already checked in Elixir).
#[derive(NifMap)]
pub struct WasiOptions {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// `{host_path, guest_path, writable}`
    preopens: Vec<(String, String, bool)>,
    deterministic: bool,
    random_seed: Option<u64>,
}

fn decode_sink(term: Term, name: &'static str) -> WbResult<Arc<Sink>> {
    use crate::atoms as a;
    let bad = || {
        WbError::new(
            Kind::Argument,
            format!("{name} must be :discard, {{:capture, limit}} or {{:stream, pid, tag}}"),
        )
    };
    if let Ok(atom) = term.decode::<rustler::Atom>() {
        return if atom == a::discard() {
            Ok(Sink::new(name, SinkMode::Discard))
        } else {
            Err(bad())
        };
    }
    let items = rustler::types::tuple::get_tuple(term).map_err(|_| bad())?;
    let tag: rustler::Atom = items.first().ok_or_else(bad)?.decode().map_err(|_| bad())?;
    match items.len() {
        2 if tag == a::capture() => {
            let limit: usize = items[1].decode().map_err(|_| bad())?;
            Ok(Sink::new(name, SinkMode::Capture { limit }))
        }
        3 if tag == a::stream() => {
            let pid: LocalPid = items[1].decode().map_err(|_| bad())?;
            let owned = OwnedEnv::new();
            let saved = owned.save(items[2]);
            Ok(Sink::new(
                name,
                SinkMode::Stream {
                    pid,
                    env: owned,
                    tag: saved,
                },
            ))
        }
        _ => Err(bad()),
    }
}

fn decode_stdin(term: Term) -> WbResult<Arc<Pipe>> {
    if let Ok(pipe) = term.decode::<ResourceArc<PipeResource>>() {
        return Ok(pipe.pipe.clone());
    }
    if let Ok(bin) = term.decode::<Binary>() {
        return Ok(Pipe::filled(bin.as_slice()));
    }
    if term.is_atom() && term.decode::<rustler::Atom>().ok() == Some(crate::atoms::nil()) {
        return Ok(Pipe::filled(&[]));
    }
    Err(WbError::new(
        Kind::Argument,
        "stdin must be nil, a binary or a %Wasmbeam.Wasi.Pipe{}",
    ))
}

fn build(
    opts: &WasiOptions,
    stdin: Arc<Pipe>,
    stdout: &Arc<Sink>,
    stderr: &Arc<Sink>,
) -> WbResult<WasiP1Ctx> {
    let mut b = WasiCtxBuilder::new();
    // No network, whatever Wasmtime's defaults become (preview 1 has no
    // sockets of its own; this also holds for a preview 2 context later).
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    b.args(&opts.args);
    for (k, v) in &opts.env {
        b.env(k, v);
    }
    for (host, guest, writable) in &opts.preopens {
        let perms = if *writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        b.preopened_dir(host, guest, perms).map_err(|e| {
            WbError::new(
                Kind::Argument,
                format!("cannot preopen {host:?} as {guest:?}: {e}"),
            )
        })?;
    }
    b.stdin(PipeReader(stdin));
    b.stdout(SinkWriter(stdout.clone()));
    b.stderr(SinkWriter(stderr.clone()));
    if opts.deterministic {
        b.wall_clock(SteppingClock {
            now: AtomicU64::new(0),
        });
        b.monotonic_clock(SteppingClock {
            now: AtomicU64::new(0),
        });
    }
    if let Some(seed) = opts.random_seed {
        b.secure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(seed)));
        b.insecure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(
            seed ^ 0x5DEE_CE66_D1CE_4E5B,
        )));
        b.insecure_random_seed(seed as u128);
    }
    Ok(b.build_p1())
}

/// Gives `store` a WASI context. A store has at most one.
#[rustler::nif]
fn store_set_wasi<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    options: WasiOptions,
    stdin: Term<'a>,
    stdout: Term<'a>,
    stderr: Term<'a>,
) -> Term<'a> {
    let result = crate::error::guard(|| {
        let stdin = decode_stdin(stdin)?;
        let stdout = decode_sink(stdout, "stdout")?;
        let stderr = decode_sink(stderr, "stderr")?;
        store.with_idle(|wstore| {
            if wstore.data().wasi.is_some() {
                return Err(WbError::new(
                    Kind::Argument,
                    "the store already has a WASI context",
                ));
            }
            let ctx = build(&options, stdin, &stdout, &stderr)?;
            wstore.data_mut().wasi = Some(ctx);
            let _ = store.wasi.set(Arc::new(WasiShared { stdout, stderr }));
            Ok(crate::atoms::ok())
        })
    });
    reply(env, result)
}

/// What the guest wrote to captured stdout and stderr since the last take.
#[rustler::nif]
fn store_wasi_output<'a>(env: Env<'a>, store: ResourceArc<StoreResource>) -> Term<'a> {
    let result = match store.wasi.get() {
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
            Ok((encode(shared.stdout.take()), encode(shared.stderr.take())))
        }
    };
    reply(env, result)
}

// ---------------------------------------------------------------------------
// Linking.

/// The store's WASI context; a store that was never given one gets a
/// context that grants nothing (only reachable if a WASI function of
/// another store's making is called, which linking prevents).
pub fn context(data: &mut StoreData) -> &mut WasiP1Ctx {
    data.wasi
        .get_or_insert_with(|| WasiCtxBuilder::new().build_p1())
}

fn linker(engine: &crate::engine::EngineResource) -> WbResult<&Linker<StoreData>> {
    engine.wasi_linker.get_or_try_init(|| {
        let mut linker = Linker::new(&engine.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, context)
            .map_err(|e| WbError::new(Kind::Link, e.to_string()))?;
        Ok(linker)
    })
}

/// The WASI implementation of the import `module`.`name`, made in `store`.
pub fn import(
    res: &StoreResource,
    store: &mut WStore,
    module: &str,
    name: &str,
) -> WbResult<Extern> {
    if store.data().wasi.is_none() {
        return Err(WbError::new(
            Kind::Link,
            format!(
                "the module imports {module:?} {name:?} from WASI, but the store has no WASI context (pass wasi: options)"
            ),
        ));
    }
    linker(&res.engine)?
        .get(&mut *store, module, name)
        .map_err(|_| {
            WbError::new(
                Kind::Link,
                format!("WASI preview 1 has no function {module:?} {name:?}"),
            )
        })
}
