//! The HTTP/1.1 client: one kept-alive hyper connection per worker, re-opened when the server
//! closes it, with no pool, no redirects and no retries in the way of the measurement.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::stats::ErrorKind;
use crate::target::Target;

/// One request body and the headers that describe it, built once and sent many times.
#[derive(Debug, Clone)]
pub struct HttpPayload {
    pub body: Bytes,
    pub content_type: &'static str,
    /// For the binary tensor extension: the length of the JSON header part.
    pub inference_header_len: Option<usize>,
}

/// A worker's connection to the target.
pub struct HttpConn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Requests sent on the current connection, and the most it may carry (0: no limit).
    used: u64,
    reconnect_every: u64,
}

impl HttpConn {
    pub fn new(target: Arc<Target>, reconnect_every: u64) -> HttpConn {
        HttpConn {
            target,
            sender: None,
            used: 0,
            reconnect_every,
        }
    }

    /// Opens the connection unless one is open and reusable.
    pub async fn ensure_connected(&mut self, timeout: Duration) -> Result<(), ErrorKind> {
        let spent = self.reconnect_every > 0 && self.used >= self.reconnect_every;
        if !spent && self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        self.sender = None;
        self.used = 0;
        let connect = TcpStream::connect((self.target.host.as_str(), self.target.port));
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ErrorKind::Timeout)?
            .map_err(|_| ErrorKind::Connect)?;
        // Small requests: without NODELAY, Nagle's algorithm adds up to 40 ms to some.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        tokio::spawn(async move {
            // The connection's own error surfaces through the next `send_request` as well.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one POST and reads the whole answer. A failed or timed-out request drops the
    /// connection, since its state is unknown.
    pub async fn post(
        &mut self,
        payload: &HttpPayload,
        timeout: Duration,
    ) -> Result<(), ErrorKind> {
        self.ensure_connected(timeout).await?;
        let result = tokio::time::timeout(timeout, self.exchange(payload))
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
        if matches!(result, Err(ErrorKind::Io | ErrorKind::Timeout)) {
            self.sender = None;
        }
        result
    }

    async fn exchange(&mut self, payload: &HttpPayload) -> Result<(), ErrorKind> {
        let sender = self.sender.as_mut().ok_or(ErrorKind::Io)?;
        self.used += 1;
        sender.ready().await.map_err(|_| ErrorKind::Io)?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.target.path.as_str())
            .header(header::HOST, self.target.authority.as_str())
            .header(header::CONTENT_TYPE, payload.content_type)
            .header(header::CONTENT_LENGTH, payload.body.len());
        if let Some(len) = payload.inference_header_len {
            request = request.header("inference-header-content-length", len);
        }
        let request = request
            .body(Full::new(payload.body.clone()))
            .map_err(|_| ErrorKind::Io)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| ErrorKind::Io)?;
        let status = response.status();
        // Read the whole body: the answer is not complete, nor the connection reusable, before.
        response
            .into_body()
            .collect()
            .await
            .map_err(|_| ErrorKind::Io)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ErrorKind::Status(status.as_u16()))
        }
    }
}

/// One GET on a fresh connection, for the pre-flight metadata call.
pub async fn get(
    target: &Target,
    path: &str,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let call = async {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", target.base))?;
        let (mut sender, connection) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", target.base))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::get(path)
            .header(header::HOST, target.authority.as_str())
            .body(Empty::new())
            .map_err(|e| format!("bad request path `{path}`: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {}{path} failed: {e}", target.base))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET {}{path}: reading the answer failed: {e}", target.base))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "GET {}{path}: no answer within {timeout:?}",
                target.base
            ))
        })
}
