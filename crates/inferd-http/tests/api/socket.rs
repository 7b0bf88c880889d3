//! Over a real socket (port 0): the seed's request, and 413 for bodies over the limit before
//! they are fully sent, by Content-Length and chunked.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

async fn serve() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, inferd_http::app(state()))
            .await
            .unwrap();
    });
    addr
}

/// Reads until the end of the response head and whatever body arrived with it.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = Vec::new();
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&got);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end].lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_some_and(|l| got.len() >= head_end + 4 + l) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn the_seeds_request_over_tcp() {
    let addr = serve().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = r#"{"inputs": [5.1, 3.5, 1.4, 0.2]}"#;
    let request = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id:"));
    assert!(response.ends_with(r#"{"prediction":[0]}"#), "{response}");
}

#[tokio::test]
async fn content_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let addr = serve().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head =
        "POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"));
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_while_streaming() {
    let addr = serve().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // One byte past the 64 KiB test limit, in 4 KiB chunks, and the body never ends: an answer
    // proves the server did not wait for the rest.
    let chunk = format!("1000\r\n{}\r\n", "1".repeat(4096));
    for _ in 0..16 {
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    stream.write_all(b"1\r\n1\r\n").await.unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}
