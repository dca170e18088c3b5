//! The HTTP server: accepts connections, serves HTTP/1.1 on them, and cuts off a client that
//! holds a connection without using it. Owns connection lifetimes (the header and idle
//! timeouts, graceful shutdown); it must not look at what a request asks.
//!
//! A connection is, at any time, either *busy* (a request is being answered, including a
//! watch streaming for as long as it lasts: never cut) or *waiting* for a request:
//! - from the moment it is accepted, the client has [`Timeouts::header`] to send the request's
//!   headers, however slowly the bytes come (slowloris);
//! - after a response, it may stay open for [`Timeouts::idle`] with nothing sent; once the
//!   first byte of the next request arrives, the headers are due [`Timeouts::header`] later.
//!
//! Once the headers are in, the body's time is the handler's (`SandboxConfig::body_timeout`,
//! enforced where [`routes`] reads it).
//!
//! hyper's own `header_read_timeout` is not used: it starts whenever a connection waits for a
//! request, so it would also close every idle keep-alive connection after the (short) header
//! timeout, and the two limits could not differ.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::routes::{self, App};

/// How long a connection may hold the server without a request; zero: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accepting a connection, or from the first byte of a later request, until that
    /// request's headers are complete.
    pub header: Duration,
    /// From the end of a response until the first byte of the next request.
    pub idle: Duration,
}

/// Where a connection is, as its reads and the requests on it report.
#[derive(Debug)]
struct Phase {
    /// Requests being answered (their responses not yet finished).
    busy: usize,
    /// When the connection began waiting, or when the first byte of a request came.
    since: Instant,
    /// Whether bytes of a request have come since (its headers are then due).
    reading: bool,
}

/// The shared view of one connection; the IO and the service report to it, the connection's
/// task reads it to know when to cut.
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            // A fresh connection's headers are due from the moment it is accepted.
            phase: Mutex::new(Phase {
                busy: 0,
                since: Instant::now(),
                reading: true,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes came from the client.
    fn read(&self) {
        let mut p = self.lock();
        if p.busy == 0 && !p.reading {
            p.reading = true;
            p.since = Instant::now();
            drop(p);
            self.changed.notify_one();
        }
    }

    /// A request's headers are in: the connection is busy until the guard is dropped.
    fn begin(self: &Arc<Self>) -> Busy {
        self.lock().busy += 1;
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// When the connection is to be cut if nothing changes, or `None` while it is busy.
    fn deadline(&self, t: Timeouts) -> Option<Instant> {
        let p = self.lock();
        if p.busy > 0 {
            return None;
        }
        let limit = if p.reading { t.header } else { t.idle };
        (!limit.is_zero()).then(|| p.since + limit)
    }
}

/// Held while a request is answered: from its headers until its response body is finished or
/// dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut p = self.0.lock();
        p.busy = p.busy.saturating_sub(1);
        if p.busy == 0 {
            p.reading = false;
            p.since = Instant::now();
        }
        drop(p);
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its connection busy until it is finished.
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, reporting to the connection's [`Activity`] whenever bytes come in.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Serve connections from `listener` until `stop` is cancelled, then let the requests in
/// flight finish (open watches are ended by the store) and return.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    timeouts: Timeouts,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    conns.spawn(connection(tcp, app.clone(), timeouts, stop.clone()));
                }
                Err(e) => accept_failed(&e, &stop).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Errors about one connection are that connection's; others (out of file descriptors) are
/// waited out, as hyper's and axum's servers do.
async fn accept_failed(e: &io::Error, stop: &CancellationToken) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "sandbox cannot accept connections; retrying in 1s");
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

async fn connection(tcp: TcpStream, app: Arc<App>, timeouts: Timeouts, stop: CancellationToken) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        tcp,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = activity.begin();
            let app = app.clone();
            async move {
                let response = routes::handle(app, req.map(Body::new)).await;
                Ok::<_, Infallible>(response.map(|inner| Tracked { inner, _busy: busy }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    // Upgrades: `pods/exec` switches to WebSocket.
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(timeouts);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "sandbox connection ended");
                }
                return;
            }
            _ = activity.changed.notified() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                // Checked again: the connection may have become busy at the last moment.
                if activity.deadline(timeouts).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("sandbox connection cut: no request in time");
                    return;
                }
            }
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
