//! The per-connection service: counts the connection's requests in flight (the sweeper's
//! "busy"), gives each request body its read deadline, and calls the port's service.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use tower::util::Oneshot;

use crate::table::Conn;
use crate::{Body, ConnectionLimits, TimedBody};

pub struct ConnService<S> {
    inner: S,
    conn: Arc<Conn>,
    body_timeout: Duration,
}

impl<S> ConnService<S> {
    pub fn new(inner: S, conn: Arc<Conn>, limits: &ConnectionLimits) -> Self {
        Self {
            inner,
            conn,
            body_timeout: limits.body_read_timeout,
        }
    }
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for ConnService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone,
{
    type Response = http::Response<B>;
    type Error = Infallible;
    type Future = InFlight<S>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        self.conn.requests.fetch_add(1, Ordering::AcqRel);
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let request = request.map(|body| TimedBody::new(body, self.body_timeout));
        InFlight {
            call: Oneshot::new(self.inner.clone(), request),
            guard: Guard(Arc::clone(&self.conn)),
        }
    }
}

/// Marks the request finished when dropped: answered, failed or cancelled alike.
struct Guard(Arc<Conn>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    pub struct InFlight<S>
    where
        S: tower::Service<http::Request<Body>>,
    {
        #[pin]
        call: Oneshot<S, http::Request<Body>>,
        guard: Guard,
    }
}

impl<S> Future for InFlight<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().call.poll(cx)
    }
}
