//! The per-connection service: counts the connection's requests in flight (the sweeper's
//! "busy", from the request's head until its answer's last byte was handed to the socket),
//! gives each request body its read deadline, and calls the port's service.

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
    type Response = http::Response<GuardedBody<B>>;
    type Error = Infallible;
    type Future = InFlight<S>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        self.conn.requests.fetch_add(1, Ordering::AcqRel);
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let request = request.map(|body| TimedBody::new(body, self.body_timeout));
        InFlight {
            call: Oneshot::new(self.inner.clone(), request),
            guard: Some(Guard(Arc::clone(&self.conn))),
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
        guard: Option<Guard>,
    }
}

impl<S, B> Future for InFlight<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>,
{
    type Output = Result<http::Response<GuardedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.call.poll(cx));
        // The request stays in flight while its answer is being sent.
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| GuardedBody { inner, guard })))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request counted in flight until it has been sent.
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        guard: Option<Guard>,
    }
}

impl<B: http_body::Body> http_body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
