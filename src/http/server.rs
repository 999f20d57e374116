//! The accept loop both modes serve through, with the limits a listener open to the internet
//! needs: `axum::serve` has none of them, so one slow or idle client could hold a connection (a
//! file descriptor and its buffers) forever, and a few hundred could starve real leads.
//!
//! - **Header timeout** ([`Limits::header_timeout`]): hyper's `header_read_timeout`. Hyper starts
//!   it whenever it waits for a request head: on a new connection *and* on a kept-alive idle one,
//!   so it is also the idle keep-alive timeout (hyper has no separate knob for that).
//! - **Header size** ([`MAX_HEADER_BUFFER`]): hyper's `max_buf_size`; a longer head gets 431 and
//!   the connection is closed, so a half-sent header block costs at most this much memory.
//! - **Body deadline** ([`Limits::body_timeout`]): the whole request body must arrive within it,
//!   counted from the request head. Written by hand: tower-http's `RequestBodyTimeoutLayer`
//!   restarts its timer on every frame, so a client dribbling a byte at a time is never cut.
//! - **Early answers are readable**: when a handler answers without reading the whole body (401,
//!   413, 408 excepted), the rest of the body is read and discarded in the background, up to
//!   [`DRAIN_MAX_BYTES`] and the body deadline. Hyper instead stops reading, and closing a socket
//!   with unread data makes the kernel send a reset, so the client saw a broken pipe instead of
//!   the answer.
//! - **Connection caps** ([`Limits::max_connections`], [`Limits::max_connections_per_peer`]):
//!   beyond either cap a new connection is closed at once rather than queued, and the per-peer
//!   cap keeps one address from using up the global one. Written by hand: tower's concurrency
//!   limit counts requests and queues them, and neither tower-http nor hyper-util counts
//!   connections per peer.
//!
//! Everything else (HTTP/1 parsing, timers, graceful shutdown) is hyper and hyper-util.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, Request};
use axum::Router;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// Largest request head (start line and headers) a connection may buffer. Leads arrive with a
/// few hundred bytes of headers; the Functions host adds a few more.
pub const MAX_HEADER_BUFFER: usize = 16 * 1024;

/// Most body bytes read and discarded after an early answer, so the client can finish sending
/// and read it. A declared `Content-Length` beyond this is not drained: the connection is
/// closed, as before.
pub const DRAIN_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// How long shutdown waits for open connections to finish their requests. A client that never
/// reads its answer would otherwise hold the process open.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// File descriptors left for everything but client connections (storage, SMTP and webhook
/// sockets, the log, the runtime) when the global cap is fitted under the process's limit.
const FD_RESERVE: usize = 32;

/// The limits on clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive within this; also how long a kept-alive connection may idle.
    pub header_timeout: Duration,
    /// The whole request body must arrive within this, counted from its head.
    pub body_timeout: Duration,
    /// Open connections, all peers together.
    pub max_connections: usize,
    /// Open connections from one peer address (IPv6: one /64); `None`: no per-peer cap.
    pub max_connections_per_peer: Option<usize>,
}

impl Limits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(15);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
    pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 64;

    /// `handler serve`: anyone who can reach the port is a client, so every cap applies, to
    /// loopback peers too. Loopback is not exempt: a reverse proxy on the same machine would
    /// then be unlimited, and so would every client it forwards one-to-one; such a proxy needs a
    /// higher `--max-connections-per-peer` instead.
    pub fn standalone() -> Self {
        Limits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: Some(Self::DEFAULT_MAX_CONNECTIONS_PER_PEER),
        }
    }

    /// Under the Functions host: we listen on 127.0.0.1 and the host is the only client, opening
    /// as many connections as it has invocations in flight. A per-peer cap would cap the host
    /// itself, so there is none; the global cap still bounds file descriptors, and the timeouts
    /// do no harm (the host sends whole requests at once).
    pub fn host() -> Self {
        Limits { max_connections_per_peer: None, ..Self::standalone() }
    }

    /// The caps actually applied: the global cap fitted under the open-file limit (beyond it,
    /// accepting fails for everyone, the case the cap exists to prevent), and the per-peer cap
    /// at most half the global one, so one address can never take every slot.
    fn effective(&self) -> (usize, Option<usize>) {
        let mut total = self.max_connections.max(1);
        if let Some(fds) = open_file_limit() {
            total = total.min(fds.saturating_sub(FD_RESERVE).max(2));
        }
        let per_peer = self.max_connections_per_peer.map(|p| p.clamp(1, (total / 2).max(1)));
        (total, per_peer)
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then lets open
/// connections finish (for at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let (max_total, max_per_peer) = limits.effective();
    tracing::debug!(max_total, ?max_per_peer, ?limits, "connection limits");
    let slots = Arc::new(Slots::new(max_total, max_per_peer));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(MAX_HEADER_BUFFER).keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = slots.acquire(peer.ip()) else {
            // Closed at once: queueing would hold the descriptor the cap exists to protect.
            drop(stream);
            continue;
        };
        let body_timeout = limits.body_timeout;
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let req = guard_body(req, body_timeout);
            router.clone().oneshot(req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Timeouts and clients that go away are routine; never an error of ours.
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    Ok(())
}

/// An accept error: the listener itself stays usable, so log and go on. Out of descriptors, the
/// next accept would fail at once too: pause rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// The soft limit on open files, where the platform tells it (`/proc/self/limits` on Linux,
/// which is what Azure Functions and containers run).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// A connection-cap key: the address, or for IPv6 its /64 (one host usually has a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Open connections, counted globally and per peer.
struct Slots {
    max_total: usize,
    max_per_peer: Option<usize>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
    /// Refusals since the last warning: logged at most once a minute, so an attack does not
    /// flood the log.
    refused: u64,
    warned_at: Option<Instant>,
}

/// One open connection's place under the caps; freed on drop.
struct Slot {
    slots: Arc<Slots>,
    peer: IpAddr,
}

impl Slots {
    fn new(max_total: usize, max_per_peer: Option<usize>) -> Self {
        Slots { max_total, max_per_peer, counts: Mutex::default() }
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let peer = peer_key(ip);
        // A panic while holding the lock leaves the counts consistent (they change only below).
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let from_peer = c.per_peer.get(&peer).copied().unwrap_or(0);
        let full = c.total >= self.max_total;
        let peer_full = self.max_per_peer.is_some_and(|max| from_peer >= max);
        if full || peer_full {
            c.refused += 1;
            let now = Instant::now();
            if c.warned_at.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
                let which = if peer_full { "per-peer" } else { "global" };
                tracing::warn!(%ip, cap = which, refused = c.refused, "connection cap reached: refusing new connections");
                c.refused = 0;
                c.warned_at = Some(now);
            }
            return None;
        }
        c.total += 1;
        *c.per_peer.entry(peer).or_default() += 1;
        Some(Slot { slots: self.clone(), peer })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.per_peer.remove(&self.peer);
            }
        }
    }
}

/// The request body did not arrive within [`Limits::body_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
pub struct BodyTimeout;

/// Whether a body error (anywhere in its chain) is the body deadline.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<BodyTimeout>())
}

fn guard_body(req: Request<Incoming>, timeout: Duration) -> Request<Body> {
    // A client that sent `Expect: 100-continue` sends no body until told to: if the handler
    // answers without reading, there is nothing to drain.
    let expects_continue = req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    req.map(|body| {
        Body::new(GuardedBody {
            inner: Some(body),
            deadline: Box::pin(tokio::time::sleep(timeout)),
            polled: false,
            ended: false,
            expects_continue,
        })
    })
}

/// A request body under one deadline for all of it, drained after an early answer.
struct GuardedBody {
    /// `None` once the deadline passed: dropping hyper's body makes it close the connection.
    inner: Option<Incoming>,
    deadline: Pin<Box<Sleep>>,
    polled: bool,
    ended: bool,
    expects_continue: bool,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        this.polled = true;
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                // The connection failed: nothing left worth draining.
                this.ended = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.inner = None;
                    Poll::Ready(Some(Err(BodyTimeout.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        if self.ended || body.is_end_stream() || (self.expects_continue && !self.polled) || body.size_hint().lower() > DRAIN_MAX_BYTES {
            return;
        }
        // Drops happen inside the runtime (in a connection's task); without one, hyper closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(drain(body, self.deadline.deadline()));
    }
}

/// Reads and discards the rest of a body until it ends, [`DRAIN_MAX_BYTES`] are read or the
/// body deadline passes. The connection (and its slot) stays open meanwhile, so the caps
/// still bound how many drains run.
async fn drain(mut body: Incoming, deadline: Instant) {
    let mut left = DRAIN_MAX_BYTES;
    let read_all = async {
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let Ok(frame) = frame else { return };
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            if n > left {
                return;
            }
            left -= n;
        }
    };
    let _ = tokio::time::timeout_at(deadline, read_all).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_and_global_caps() {
        let slots = Arc::new(Slots::new(4, Some(2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.acquire(a).unwrap();
        let _a2 = slots.acquire(a).unwrap();
        assert!(slots.acquire(a).is_none(), "per-peer cap");
        let _b1 = slots.acquire(b).unwrap();
        let _b2 = slots.acquire(b).unwrap();
        assert!(slots.acquire("10.0.0.3".parse().unwrap()).is_none(), "global cap");
        drop(a1);
        assert!(slots.acquire(a).is_some(), "a closed connection frees its slot");
    }

    #[test]
    fn ipv6_peers_count_per_64_and_mapped_v4_as_v4() {
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(peer_key(x), peer_key(y));
        assert_ne!(peer_key(x), peer_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(peer_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn one_peer_never_gets_every_slot() {
        let limits = Limits { max_connections: 10, max_connections_per_peer: Some(64), ..Limits::standalone() };
        let (total, per_peer) = limits.effective();
        assert!(total <= 10);
        assert!(per_peer.is_some_and(|p| p <= total / 2));
        assert_eq!(Limits::host().effective().1, None);
    }
}
