//! Drives the load generator against a small in-process server that checks every request's
//! encoding (seed, V2 JSON, V2 binary, V1), and checks counts, error kinds, open-loop pacing and
//! the pre-flight errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use inferd_bench::{bench, BenchArgs, BenchError, Config, Report};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
}

type Answer = (StatusCode, Json<Value>);

fn ok(body: Value) -> Answer {
    (StatusCode::OK, Json(body))
}

fn bad(why: &str) -> Answer {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": why })))
}

fn is_row(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|r| r.len() == 4 && r.iter().all(Value::is_number))
}

async fn seed(State(seen): State<Arc<Seen>>, body: Bytes) -> Answer {
    seen.requests.fetch_add(1, Ordering::Relaxed);
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if is_row(&v["inputs"]) => ok(json!({"prediction": [0]})),
        _ => bad("want {\"inputs\": [4 numbers]}"),
    }
}

async fn v1(body: Bytes) -> Answer {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v)
            if v["instances"]
                .as_array()
                .is_some_and(|rows| rows.len() == 1 && is_row(&rows[0])) =>
        {
            ok(json!({"predictions": [0]}))
        }
        _ => bad("want {\"instances\": [[4 numbers]]}"),
    }
}

async fn v2_infer(headers: HeaderMap, body: Bytes) -> Answer {
    let header_len = headers
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let json_part = &body[..header_len.unwrap_or(body.len()).min(body.len())];
    let Ok(request) = serde_json::from_slice::<Value>(json_part) else {
        return bad("header is not JSON");
    };
    let input = &request["inputs"][0];
    if input["name"] != "input" || input["datatype"] != "FP32" || input["shape"] != json!([1, 4]) {
        return bad("wrong input description");
    }
    match header_len {
        Some(len) => {
            let size = input["parameters"]["binary_data_size"].as_u64();
            let raw = &body[len..];
            if size != Some(16)
                || raw.len() != 16
                || request["parameters"]["binary_data_output"] != true
            {
                return bad("binary part does not match binary_data_size");
            }
            if f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) != 5.1 {
                return bad("binary data is not little-endian FP32");
            }
        }
        None if input["data"].as_array().map(Vec::len) != Some(4) => return bad("want 4 values"),
        None => {}
    }
    ok(
        json!({"model_name": "iris", "outputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [0]}]}),
    )
}

async fn flaky(State(seen): State<Arc<Seen>>) -> Answer {
    if seen.requests.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
        ok(json!({"prediction": [0]}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "busy"})),
        )
    }
}

async fn serve() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/predict", post(seed))
        .route("/flaky", post(flaky))
        .route("/v1/models/iris:predict", post(v1))
        .route(
            "/v2/models/iris",
            get(|| async { Json(json!({"name": "iris", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]})) }),
        )
        .route("/v2/models/iris/infer", post(v2_infer))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

async fn run(args: &[&str]) -> Result<Report, BenchError> {
    let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
        .expect("arguments parse");
    bench(&Config::from_args(cli.args)?).await
}

#[tokio::test]
async fn requests_mode_sends_exactly_that_many() {
    let (base, seen) = serve().await;
    let url = format!("{base}/predict");
    let r = run(&["--url", &url, "-n", "300", "-c", "4", "--warmup", "0", "-q"])
        .await
        .unwrap();
    assert_eq!((r.requests, r.ok, r.errors), (300, 300, 0));
    assert_eq!(seen.requests.load(Ordering::Relaxed), 300);
    assert!(r.passed && r.rps > 0.0 && r.latency_ms.p50 > 0.0 && r.latency_ms.count == 300);
    assert!(r.refused_latency_ms.is_none() && r.ok_latency_ms.count == 300);
    assert!(r.latency_ms.p50 <= r.latency_ms.p99 && r.latency_ms.p99 <= r.latency_ms.max);
    let r = run(&[
        "--url",
        &url,
        "-n",
        "100",
        "-c",
        "2",
        "--warmup",
        "0",
        "--reconnect-every",
        "7",
        "-q",
    ])
    .await
    .unwrap();
    assert_eq!((r.ok, r.errors), (100, 0));
}

#[tokio::test]
async fn every_http_protocol_is_encoded_as_the_server_expects() {
    let (base, _) = serve().await;
    for protocol in ["seed", "v2-json", "v2-binary", "v1"] {
        let mut args = vec![
            "--url",
            &base,
            "--protocol",
            protocol,
            "-n",
            "50",
            "-c",
            "2",
            "--warmup",
            "0",
            "-q",
        ];
        args.extend(["--model", "iris", "--values", "5.1,3.5,1.4,0.2"]);
        let r = run(&args).await.unwrap();
        assert_eq!(
            (r.ok, r.errors),
            (50, 0),
            "{protocol}: {:?}",
            r.errors_by_kind
        );
    }
    // Random bodies from metadata, too.
    let r = run(&[
        "--url",
        &base,
        "--protocol",
        "v2-json",
        "--model",
        "iris",
        "-n",
        "20",
        "--warmup",
        "0",
        "-q",
    ])
    .await
    .unwrap();
    assert_eq!(r.ok, 20);
    assert!(r.config.body.contains("random"));
}

#[tokio::test]
async fn a_v2_body_file_is_re_encoded_as_binary() {
    let (base, _) = serve().await;
    let path = std::env::temp_dir().join(format!("inferd-bench-body-{}.json", std::process::id()));
    let body = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2]]}]});
    std::fs::write(&path, body.to_string()).unwrap();
    let url = format!("{base}/v2/models/iris/infer");
    let r = run(&[
        "--url",
        &url,
        "--protocol",
        "v2-binary",
        "--body",
        path.to_str().unwrap(),
        "-n",
        "10",
        "--warmup",
        "0",
        "-q",
    ])
    .await;
    std::fs::remove_file(&path).unwrap();
    let r = r.unwrap();
    assert_eq!((r.ok, r.errors), (10, 0), "{:?}", r.errors_by_kind);
}

#[tokio::test]
async fn errors_are_counted_by_kind_against_the_threshold() {
    let (base, _) = serve().await;
    let url = format!("{base}/flaky");
    let r = run(&["--url", &url, "-n", "100", "-c", "1", "--warmup", "0", "-q"])
        .await
        .unwrap();
    assert_eq!((r.ok, r.errors), (50, 50));
    assert_eq!(r.errors_by_kind["http_503"], 50);
    assert!((r.error_rate - 0.5).abs() < 1e-9);
    // Refusals are timed apart from successes, and both are in the overall latency.
    let refused = r.refused_latency_ms.as_ref().expect("503s were answered");
    assert_eq!((r.ok_latency_ms.count, refused.count), (50, 50));
    assert_eq!(r.latency_ms.count, 100);
    assert!(r.table().contains("  refused"));
    assert!(!r.passed);
    let r = run(&[
        "--url",
        &url,
        "-n",
        "10",
        "--warmup",
        "0",
        "--max-error-rate",
        "0.6",
        "-q",
    ])
    .await
    .unwrap();
    assert!(r.passed);
}

#[tokio::test]
async fn open_loop_keeps_the_rate() {
    let (base, _) = serve().await;
    let url = format!("{base}/predict");
    let r = run(&[
        "--url", &url, "--rate", "200", "-d", "2s", "-c", "8", "--warmup", "200ms", "-q",
    ])
    .await
    .unwrap();
    assert!(
        (340..=420).contains(&r.requests),
        "{} requests at 200/s for 2s",
        r.requests
    );
    assert_eq!(r.config.mode, "open");
    assert!(r.send_lag_ms.is_some());
}

#[tokio::test]
async fn unreachable_targets_and_bad_arguments_fail_before_the_load() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/predict");
    let err = run(&["--url", &url, "-d", "1s", "-q"]).await.unwrap_err();
    assert!(matches!(err, BenchError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");

    let (base, _) = serve().await;
    let err = run(&[
        "--url",
        &base,
        "--protocol",
        "v2-json",
        "--model",
        "nope",
        "-q",
    ])
    .await
    .unwrap_err();
    assert!(matches!(err, BenchError::Unavailable(_)), "{err}");
    for bad in [
        vec!["--url", "ftp://x/predict"],
        vec!["--url", &base, "--protocol", "v2-grpc"],
        vec!["--url", &base, "--concurrency", "0"],
        vec!["--url", &base, "--rate", "0"],
        vec!["--url", &base, "--body", "/nonexistent/body.json"],
    ] {
        let err = run(&bad).await.unwrap_err();
        assert!(matches!(err, BenchError::Config(_)), "{bad:?}: {err}");
    }
}
