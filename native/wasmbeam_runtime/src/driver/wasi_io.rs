//! WASI preview 1 I/O without threads: stdin pipes, stdout/stderr sinks,
//! reproducible clocks and randomness, and the context built from exactly
//! what was granted.
//!
//! Stdio never touches the BEAM's own file descriptors. Stdin is a
//! [`Pipe`]: bytes given up front, or a pipe written while the guest runs
//! (a read waits without holding a thread: the poller parks until the pipe
//! wakes it). Stdout and stderr are [`Sink`]s: captured (bounded; writing
//! more traps the guest), discarded, or streamed (the driver hands what a
//! slice wrote to the layer above right after the poll).

use crate::driver::error::{Kind, WbError, WbResult};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtxBuilder};

// ---------------------------------------------------------------------------
// Stdin: a pipe.

#[derive(Default)]
struct PipeState {
    buf: VecDeque<u8>,
    closed: bool,
    /// Every reader waiting for data: one pipe may be the stdin of several
    /// programs, and each must be woken (a single slot would lose all but
    /// the last).
    readers: Vec<Waker>,
}

/// A pipe's shared state, between its writer and the guests reading it.
#[derive(Default)]
pub struct Pipe {
    state: Mutex<PipeState>,
}

impl Pipe {
    /// A closed pipe holding `bytes`.
    pub fn filled(bytes: &[u8]) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe::default());
        {
            let mut s = pipe.state.lock();
            s.buf.extend(bytes);
            s.closed = true;
        }
        pipe
    }

    pub fn write(&self, bytes: &[u8]) -> WbResult<()> {
        let readers = {
            let mut s = self.state.lock();
            if s.closed {
                return Err(WbError::new(Kind::Argument, "the pipe is closed"));
            }
            s.buf.extend(bytes);
            std::mem::take(&mut s.readers)
        };
        readers.into_iter().for_each(Waker::wake);
        Ok(())
    }

    pub fn close(&self) {
        let readers = {
            let mut s = self.state.lock();
            s.closed = true;
            std::mem::take(&mut s.readers)
        };
        readers.into_iter().for_each(Waker::wake);
    }

    /// Up to `max` bytes; `None` at the end (empty and closed). One lock
    /// for both, so a reader never sees "empty" and "closed" from two
    /// different moments.
    fn take(&self, max: usize) -> Option<Bytes> {
        let mut s = self.state.lock();
        if s.buf.is_empty() && s.closed {
            return None;
        }
        let n = max.min(s.buf.len());
        Some(Bytes::from(s.buf.drain(..n).collect::<Vec<u8>>()))
    }

    /// Ready when there is data or the writer closed the pipe; otherwise
    /// remembers the reader's waker.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if !s.buf.is_empty() || s.closed {
            Poll::Ready(())
        } else {
            if !s.readers.iter().any(|w| w.will_wake(cx.waker())) {
                s.readers.push(cx.waker().clone());
            }
            Poll::Pending
        }
    }
}

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
        self.0.take(size).ok_or(StreamError::Closed)
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
                if let Some(bytes) = self.0.take(buf.remaining()) {
                    buf.put_slice(&bytes);
                }
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

// ---------------------------------------------------------------------------
// Stdout and stderr: sinks.

pub enum SinkMode {
    Discard,
    /// Keep up to `limit` bytes; writing more traps the guest.
    Capture {
        limit: usize,
    },
    /// Keep what a slice writes until the driver hands it on; at most
    /// `limit` bytes in all (`None`: no limit), writing more traps the
    /// guest: the receiving process may not read, and what it has not read
    /// piles up in its mailbox.
    Stream {
        limit: Option<u64>,
    },
}

pub struct Sink {
    name: &'static str,
    mode: SinkMode,
    buf: Mutex<Vec<u8>>,
    /// Bytes written so far (for the capture limit).
    written: AtomicU64,
}

impl Sink {
    pub fn new(name: &'static str, mode: SinkMode) -> Arc<Sink> {
        Arc::new(Sink {
            name,
            mode,
            buf: Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
        })
    }

    fn write(&self, bytes: &[u8]) -> StreamResult<()> {
        match &self.mode {
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
            SinkMode::Stream { limit: None } => {}
            SinkMode::Stream { limit: Some(limit) } => {
                let total = self.written.load(Ordering::Relaxed) + bytes.len() as u64;
                if total > *limit {
                    return Err(StreamError::Trap(wasmtime::format_err!(
                        "the guest streamed more than {limit} bytes to {}, its stream limit",
                        self.name
                    )));
                }
            }
        }
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.buf.lock().extend_from_slice(bytes);
        Ok(())
    }

    /// What a streaming sink holds now (empty for other modes).
    pub fn take_streamed(&self) -> Vec<u8> {
        match self.mode {
            SinkMode::Stream { .. } => std::mem::take(&mut *self.buf.lock()),
            _ => Vec::new(),
        }
    }

    /// What a capturing sink holds now (empty for other modes).
    pub fn take_captured(&self) -> Vec<u8> {
        match self.mode {
            SinkMode::Capture { .. } => std::mem::take(&mut *self.buf.lock()),
            _ => Vec::new(),
        }
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.mode, SinkMode::Stream { .. })
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

/// The parts of a store's WASI context reached while the context itself is
/// inside a running store.
pub struct WasiShared {
    pub stdout: Arc<Sink>,
    pub stderr: Arc<Sink>,
}

impl WasiShared {
    /// What the streaming sinks collected since the last take.
    pub fn take_streamed(&self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.take_streamed(), self.stderr.take_streamed())
    }

    pub fn streams(&self) -> bool {
        self.stdout.is_streaming() || self.stderr.is_streaming()
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

// ---------------------------------------------------------------------------
// The network: nothing unless granted, then only the granted addresses.

/// What a network grant lets the guest do (WASI preview 2 sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetUse {
    /// Open TCP connections to the granted addresses.
    Connect,
    /// Bind and listen on the granted local addresses, and accept
    /// connections from any peer.
    Listen,
    /// Send UDP datagrams to, and receive them from, the granted addresses.
    Udp,
}

/// One grant: a use, the addresses (an IP and a prefix length, as CIDR
/// writes them) and the ports (inclusive).
#[derive(Debug, Clone)]
pub struct NetGrant {
    pub net_use: NetUse,
    pub ip: IpAddr,
    pub prefix: u8,
    pub ports: (u16, u16),
}

impl NetGrant {
    fn matches(&self, addr: &SocketAddr) -> bool {
        let (lo, hi) = self.ports;
        (lo..=hi).contains(&addr.port()) && in_prefix(self.ip, self.prefix, addr.ip())
    }
}

fn in_prefix(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
        let keep = u32::from(prefix).min(width);
        if keep == 0 {
            0
        } else {
            bits >> (width - keep)
        }
    }
    // An IPv4 address reached through IPv6 (`::ffff:a.b.c.d`) is the IPv4
    // address, so a grant cannot be dodged by writing it the other way.
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (canonical(net), canonical(ip)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            masked(u128::from(u32::from(n)), 32, prefix)
                == masked(u128::from(u32::from(a)), 32, prefix)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            masked(u128::from(n), 128, prefix) == masked(u128::from(a), 128, prefix)
        }
        _ => false,
    }
}

/// Whether `grants` let the guest use `addr` for `what`. Binds the system
/// makes by itself before a connect, listen or send (to the wildcard
/// address, port 0) are allowed when a grant of that protocol exists.
pub fn network_allows(grants: &[NetGrant], addr: SocketAddr, what: SocketAddrUse) -> bool {
    let granted = |u: NetUse| grants.iter().any(|g| g.net_use == u && g.matches(&addr));
    let any = |u: NetUse| grants.iter().any(|g| g.net_use == u);
    let implicit = addr.ip().is_unspecified() && addr.port() == 0;
    match what {
        SocketAddrUse::TcpConnect => granted(NetUse::Connect),
        SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => {
            granted(NetUse::Listen) || (implicit && (any(NetUse::Connect) || any(NetUse::Listen)))
        }
        SocketAddrUse::TcpAccept => any(NetUse::Listen),
        SocketAddrUse::UdpBind => granted(NetUse::Udp) || (implicit && any(NetUse::Udp)),
        SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => granted(NetUse::Udp),
    }
}

/// What a WASI context grants (checked in Elixir before it gets here).
pub struct WasiGrants {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `(host_path, guest_path, writable)`
    pub preopens: Vec<(String, String, bool)>,
    pub deterministic: bool,
    pub random_seed: Option<u64>,
    /// Sockets (WASI preview 2): none unless granted here.
    pub network: Vec<NetGrant>,
    /// Name lookups (`wasi:sockets/ip-name-lookup`): off unless granted.
    pub ip_name_lookup: bool,
}

/// A WASI context (preview 1, and preview 2 through the same context)
/// with exactly `grants`: no network but what they list, whatever
/// Wasmtime's defaults become.
pub fn build_context(
    grants: &WasiGrants,
    stdin: Arc<Pipe>,
    stdout: &Arc<Sink>,
    stderr: &Arc<Sink>,
) -> WbResult<WasiP1Ctx> {
    let mut b = WasiCtxBuilder::new();
    let uses = |u: NetUse| grants.network.iter().any(|g| g.net_use == u);
    b.allow_tcp(uses(NetUse::Connect) || uses(NetUse::Listen))
        .allow_udp(uses(NetUse::Udp))
        .allow_ip_name_lookup(grants.ip_name_lookup);
    if !grants.network.is_empty() {
        let network: Arc<[NetGrant]> = grants.network.iter().cloned().collect();
        b.socket_addr_check(move |addr, what| {
            let allowed = network_allows(&network, addr, what);
            Box::pin(async move { allowed })
        });
    }
    b.args(&grants.args);
    for (k, v) in &grants.env {
        b.env(k, v);
    }
    for (host, guest, writable) in &grants.preopens {
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
    if grants.deterministic {
        b.wall_clock(SteppingClock {
            now: AtomicU64::new(0),
        });
        b.monotonic_clock(SteppingClock {
            now: AtomicU64::new(0),
        });
    }
    if let Some(seed) = grants.random_seed {
        b.secure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(seed)));
        b.insecure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(
            seed ^ 0x5DEE_CE66_D1CE_4E5B,
        )));
        b.insecure_random_seed(seed as u128);
    }
    Ok(b.build_p1())
}

/// A context that grants nothing.
pub fn empty_context() -> WasiP1Ctx {
    WasiCtxBuilder::new().build_p1()
}
