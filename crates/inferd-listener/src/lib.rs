//! Every port's connections: the accept loop, the connection cap, the header, body, idle and
//! write timeouts, HTTP/2 stream and header limits, and the drain. The HTTP port (HTTP/1.1 and
//! h2c) and the gRPC port both serve through [`serve`], so a rule about connections is written
//! once and holds on both.
//!
//! How the timeouts are enforced, and why this way:
//! - **Header read** (HTTP/1): a connection with no request in flight that has received bytes
//!   but not yet a whole request head is closed once `header_read_timeout` has passed since the
//!   sweeper first saw those bytes (slowloris), so up to a quarter of it later.
//! - **Body read**: a request body not complete within `body_read_timeout` of the request's
//!   start fails with [`BodyTimedOut`]; the front ends answer 408 (see [`body`]). The timer is
//!   armed only when the body is not already there, so small requests pay nothing.
//! - **Idle**: a connection with no request in flight and no bytes of a new one is shut down
//!   gracefully after `idle_timeout` (HTTP/2 PINGs do not count as activity). A request is in
//!   flight from its head until its answer's last byte. A graceful shutdown that has not
//!   finished a header timeout later (an HTTP/2 client that ignores GOAWAY) becomes a close.
//! - **Write**: a connection whose socket has refused writes for `write_timeout` (a client that
//!   stopped reading) is closed.
//!
//! One sweeper task per port checks every connection a few times per timeout, instead of
//! arming timers per request or per connection: the request path only bumps a few atomics.
//! At the connection cap, accepting pauses; the connection idle the longest is closed to make
//! room (as nginx reuses idle keep-alive connections), one at a time; when none is idle the
//! new client waits, accepted but unserved, and those behind it wait in the kernel's backlog.
#![forbid(unsafe_code)]

pub mod body;
mod io;
mod metrics;
mod service;
mod table;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use body::{BodyTimedOut, TimedBody};
use table::{Action, Table};

/// Limits on one port's connections. Every one is explicit; [`ConnectionLimits::default`]
/// gives the server's defaults, which the command line documents.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// Most connections open at once. At the limit, accepting pauses (the idlest connection is
    /// closed to make room, if one is idle).
    pub max_connections: usize,
    /// Time allowed for a whole HTTP/1 request head, from its first byte.
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request body, from the request's start.
    pub body_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Time a connection may stay unable to write (the client stopped reading).
    pub write_timeout: Duration,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: streams one connection may have open.
    pub max_concurrent_streams: u32,
    /// Largest request head: HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, and the HTTP/1 read
    /// buffer (a longer head gets 431; hyper's buffer is at least 8 KiB, hence the minimum).
    pub max_header_bytes: u32,
    /// Serve HTTP/1.1 (the REST port does; the gRPC port is HTTP/2 only).
    pub http1: bool,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            max_concurrent_streams: 128,
            max_header_bytes: 16 * 1024,
            http1: true,
        }
    }
}

impl ConnectionLimits {
    /// Refuses limits that cannot work, before any port is bound.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_concurrent_streams == 0 {
            return Err("connection and stream limits must be at least 1".into());
        }
        if self.max_header_bytes < 8192 {
            return Err("the header size limit must be at least 8192 bytes".into());
        }
        for (name, t) in [
            ("header read", self.header_read_timeout),
            ("body read", self.body_read_timeout),
            ("idle", self.idle_timeout),
            ("write", self.write_timeout),
        ] {
            if t < Duration::from_millis(100) || t > Duration::from_secs(86_400) {
                return Err(format!(
                    "the {name} timeout must be between 0.1 and 86400 seconds"
                ));
            }
        }
        Ok(())
    }
}

/// The request body every service served here receives.
pub type Body = TimedBody;

/// Serves `service` on `listener` under `limits` until `shutdown` resolves; then stops
/// accepting, shuts every connection down gracefully (in-flight requests finish; HTTP/2 gets
/// GOAWAY) and returns once all have closed. `port` names the port in metrics and logs.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    port: &'static str,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = Arc::new(limits);
    let metrics = metrics::PortMetrics::new(port);
    let table = Table::new(Arc::clone(&limits), metrics.clone());
    let builder = Arc::new(builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let _sweeper = AbortOnDrop(tokio::spawn(Arc::clone(&table).sweep()));
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors or memory: pause instead of spinning, keep serving
                // the connections already open.
                metrics.accept_errors.inc();
                tracing::warn!(port, error = %e, "accept failed; pausing 50 ms");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics.limit_reached.inc();
                match wait_for_room(&table, &permits, &mut shutdown).await {
                    Some(permit) => permit,
                    None => break,
                }
            }
        };
        // Small answers must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let conn = table.insert();
        let io = TokioIo::new(io::TrackedIo::new(stream, Arc::clone(&conn)));
        let service = service::ConnService::new(service.clone(), Arc::clone(&conn), &limits);
        let builder = Arc::clone(&builder);
        // Removed from the table and the permit returned however the task ends, panics
        // included: the drain waits for the table to empty.
        let entry = Entry {
            table: Arc::clone(&table),
            conn: Arc::clone(&conn),
            _permit: permit,
        };
        tokio::spawn(async move {
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            let mut graceful = false;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    () = conn.signalled() => match conn.action() {
                        Action::Close(_) => break,
                        Action::Shutdown(_) if !graceful => {
                            graceful = true;
                            connection.as_mut().graceful_shutdown();
                        }
                        _ => {}
                    },
                }
            }
            drop(entry);
        });
    }

    // Draining: no new connections; every open one finishes what it is doing and closes.
    drop(listener);
    table.shutdown_all();
    table.closed().await;
}

/// A connection's place in the table and its permit, given back when its task ends.
struct Entry {
    table: Arc<Table>,
    conn: Arc<table::Conn>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.table.remove(&self.conn);
    }
}

/// The sweeper ends with `serve`, even when `serve`'s future is dropped rather than drained.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// At the connection cap: closes the idlest connection to make room, and while none is idle
/// (all busy), waits for one to end or become idle. Accepting is paused meanwhile; new clients
/// wait in the kernel's backlog. `None` when the server shuts down first.
async fn wait_for_room(
    table: &Table,
    permits: &Arc<Semaphore>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let mut logged = false;
    loop {
        if !table.evict_idlest() && !logged {
            logged = true;
            tracing::warn!("connection limit reached with no idle connection; accepting paused");
        }
        tokio::select! {
            () = shutdown.as_mut() => return None,
            permit = Arc::clone(permits).acquire_owned() => return permit.ok(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if !limits.http1 {
        builder = builder.http2_only();
    }
    builder
        .http1()
        // The sweeper enforces the header timeout; hyper's own would also close idle
        // keep-alive connections at the same moment, and arms a timer per request.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes)
        // Rapid reset (CVE-2023-44487): streams a client may open and reset before the server
        // sees them, and streams the server may reset for errors, before GOAWAY.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    builder
}
