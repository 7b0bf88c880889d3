//! The socket as the sweeper sees it: bytes read (a request head on its way), whether the
//! client speaks HTTP/2, and since when writes have been refused.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::table::Conn;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct TrackedIo {
    stream: TcpStream,
    conn: Arc<Conn>,
    /// How much of the HTTP/2 preface the client's first bytes matched; `None` once decided.
    preface: Option<usize>,
}

impl TrackedIo {
    pub fn new(stream: TcpStream, conn: Arc<Conn>) -> Self {
        Self {
            stream,
            conn,
            preface: Some(0),
        }
    }

    #[cfg(test)]
    fn sniff(&mut self, bytes: &[u8]) {
        sniff(&mut self.preface, &self.conn, bytes);
    }

    fn track_write<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let blocked = &self.conn.write_blocked_since;
        match result {
            Poll::Pending => {
                if blocked.load(Ordering::Relaxed) == 0 {
                    blocked.store(self.conn.now_ms(), Ordering::Release);
                }
            }
            Poll::Ready(_) => {
                if blocked.load(Ordering::Relaxed) != 0 {
                    blocked.store(0, Ordering::Release);
                }
            }
        }
        result
    }
}

/// Advances `matched` (how much of the HTTP/2 preface the client's bytes matched so far) over
/// `bytes`, and marks the connection HTTP/2 once all of it has come. Free of `TrackedIo` so that
/// the bytes can be read in place from the caller's buffer.
fn sniff(matched: &mut Option<usize>, conn: &Conn, bytes: &[u8]) {
    let Some(so_far) = *matched else { return };
    let want = &H2_PREFACE[so_far..];
    let n = want.len().min(bytes.len());
    if bytes[..n] != want[..n] {
        *matched = None;
    } else if so_far + n == H2_PREFACE.len() {
        *matched = None;
        conn.http2.store(true, Ordering::Release);
    } else {
        *matched = Some(so_far + n);
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.conn
                .bytes_read
                .fetch_add(read as u64, Ordering::Relaxed);
            sniff(&mut this.preface, &this.conn, &buf.filled()[before..]);
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.track_write(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.track_write(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_flush(cx);
        this.track_write(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PortMetrics;
    use crate::table::Table;
    use crate::ConnectionLimits;

    async fn io() -> TrackedIo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, _) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let table = Table::new(Arc::new(ConnectionLimits::default()), PortMetrics::new("t"));
        TrackedIo::new(client.unwrap(), table.insert())
    }

    #[tokio::test]
    async fn the_preface_is_recognised_across_reads() {
        let mut io = io().await;
        io.sniff(&H2_PREFACE[..5]);
        io.sniff(&H2_PREFACE[5..20]);
        assert!(!io.conn.http2.load(Ordering::Acquire));
        io.sniff(&[&H2_PREFACE[20..], b"\0\0"].concat());
        assert!(io.conn.http2.load(Ordering::Acquire));

        let mut io = self::io().await;
        io.sniff(b"PRI * HTTP/1.1\r\n");
        io.sniff(&H2_PREFACE[14..]);
        assert!(!io.conn.http2.load(Ordering::Acquire));
    }
}
