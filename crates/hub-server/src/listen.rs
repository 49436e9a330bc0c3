//! Serving a router on a listener through hyper, with the limits a server
//! reachable from a network needs: a deadline for each request's headers
//! (slow-header clients), an idle timeout (a client that stops reading or
//! writing mid-answer), and a cap on open connections shared by every
//! origin of one server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Connection limits of a server (every origin of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this time (also the longest a
    /// kept-alive connection may wait for its next request).
    pub header_timeout: Duration,
    /// A connection that neither reads nor writes a byte for this long is
    /// closed. Longer than any stall a fault injects.
    pub idle_timeout: Duration,
    /// Connections open at once, over all origins; more wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 512,
        }
    }
}

/// The local address a request arrived on (a request extension): links
/// fall back to it when a request names no usable `Host`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub(crate) SocketAddr);

/// The client's address (a request extension): per-client rate limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Serves `app` on `listener` until `stop` fires; connections open then
/// finish their current answer.
pub(crate) fn spawn(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            // Accept, then wait for a slot: every listener of the server
            // shares the slots, so none may hold one while merely waiting
            // to accept (each holds at most this one connection unserved).
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stop.cancelled() => return,
            };
            let Ok((stream, _peer)) = accepted else {
                // EMFILE and the like: give the system a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = stop.cancelled() => return,
            };
            let app = app.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                connection(stream, app, limits, stop).await;
                drop(permit);
            });
        }
    });
}

async fn connection(stream: TcpStream, app: Router, limits: Limits, stop: CancellationToken) {
    let local = stream.local_addr().ok();
    let peer = stream.peer_addr().ok();
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        last: last.clone(),
        epoch,
    });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        if let Some(local) = local {
            request.extensions_mut().insert(LocalAddr(local));
        }
        if let Some(peer) = peer {
            request.extensions_mut().insert(PeerAddr(peer));
        }
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let check = (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(check) => {
                let idle = epoch.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if idle >= limits.idle_timeout {
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// A stream that notes when it last moved a byte either way.
struct Watched {
    inner: TcpStream,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
