//! Serves the test suite's fake models (iris-like classifier, regressor, one echo model per
//! datatype) on a port, so real clients (tritonclient, the kserve SDK, curl) can be tried
//! against the HTTP front end without the binary or a model file.
//!
//! `cargo run -p inferd-http --example fake_server -- 8080`

#[allow(dead_code)]
#[path = "../tests/api/common.rs"]
mod common;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("binding the port");
    println!(
        "listening on {}",
        listener.local_addr().expect("a bound address")
    );
    axum::serve(listener, inferd_http::app(common::state()))
        .await
        .expect("serving");
}
