//! The manager against a real directory tree, with a stand-in runtime whose "model file" is
//! a number (the model answers it) or the word `corrupt` (it fails to load); and the hardening
//! cases: a load stuck forever, FIFOs, `/dev/zero`, symlinks out of the repository, `+3`.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use inferd_core::registry::{LoadedModel, Registry};
use inferd_core::tensor::{DataType, NamedTensor, Tensor, TensorData};
use inferd_core::{Error, Model, ModelMetadata, Result, TensorSpec};
use inferd_manager::management::{router, Token};
use inferd_manager::reload::LoadRequest;
use inferd_manager::{LoadFn, Manager, ManagerConfig};
use tower::ServiceExt;

struct Constant(f32, ModelMetadata);

impl Model for Constant {
    fn metadata(&self) -> &ModelMetadata {
        &self.1
    }
    fn infer(&self, _: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        Ok(vec![NamedTensor::new(
            "y",
            Tensor::new(vec![1], TensorData::F32(vec![self.0]))?,
        )])
    }
}

fn loader() -> LoadFn {
    Arc::new(|req: &LoadRequest<'_>| {
        let text = fs::read_to_string(req.file).map_err(|_| Error::model_load("unreadable"))?;
        let value: f32 = text
            .trim()
            .parse()
            .map_err(|_| Error::model_load("corrupt model file"))?;
        let meta = ModelMetadata {
            platform: "test".into(),
            inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 1])],
            outputs: vec![TensorSpec::new("y", DataType::F32, vec![-1])],
            prediction_output: 0,
            probabilities_output: None,
        };
        Ok(LoadedModel::new(
            req.name,
            req.version,
            Arc::new(Constant(value, meta)),
        ))
    })
}

struct Repo(PathBuf);

impl Repo {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("inferd-manager-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Repo(p)
    }
    fn put(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    fn remove(&self, rel: &str) {
        fs::remove_dir_all(self.0.join(rel)).unwrap();
    }
    fn config(&self) -> ManagerConfig {
        ManagerConfig {
            root: self.0.clone(),
            poll_interval: Duration::from_millis(50),
            default_model: None,
            load_timeout: Duration::from_secs(10),
            scan_timeout: Duration::from_secs(10),
        }
    }
    fn manager(&self) -> Manager {
        Manager::new(self.config(), Registry::new(), loader())
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn answer(registry: &Registry, name: &str) -> f32 {
    let model = registry.resolve(name, None).unwrap();
    match model.model.infer(vec![]).unwrap()[0].tensor.data() {
        TensorData::F32(v) => v[0],
        other => panic!("{other:?}"),
    }
}

#[test]
fn new_versions_swap_in_and_old_ones_leave() {
    let repo = Repo::new("swap");
    repo.put("m/1/model.onnx", "1");
    let manager = repo.manager();
    manager.sync_blocking().unwrap();
    assert_eq!(answer(manager.registry(), "m"), 1.0);
    let held = manager.registry().resolve("m", None).unwrap();

    repo.put("m/2/model.onnx", "2");
    let report = manager.sync_blocking().unwrap();
    assert_eq!(report.loaded, vec![("m".to_string(), 2)]);
    assert_eq!(report.unloaded, vec![("m".to_string(), 1)]);
    assert_eq!(answer(manager.registry(), "m"), 2.0);
    // A request that started on version 1 finishes on it.
    assert_eq!(held.version, 1);
    assert!(held.model.infer(vec![]).is_ok());
    assert_eq!(
        manager.registry().snapshot().default_model.as_deref(),
        Some("m")
    );
}

#[test]
fn a_corrupt_version_leaves_the_old_one_serving_and_is_reported() {
    let repo = Repo::new("corrupt");
    repo.put("m/1/model.onnx", "1");
    let manager = repo.manager();
    manager.sync_blocking().unwrap();
    repo.put("m/2/model.onnx", "corrupt");
    let report = manager.sync_blocking().unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(answer(manager.registry(), "m"), 1.0);
    let index = manager.index();
    let bad = index
        .iter()
        .find(|e| e.version.as_deref() == Some("2"))
        .unwrap();
    assert_eq!(bad.state, "UNAVAILABLE");
    assert!(bad.reason.contains("corrupt"), "{bad:?}");
    // The same broken file is not retried on every poll...
    assert!(manager.sync_blocking().unwrap().failed.is_empty());
    // ...but a fixed one is.
    repo.put("m/2/model.onnx", "22");
    manager.sync_blocking().unwrap();
    assert_eq!(answer(manager.registry(), "m"), 22.0);
}

#[test]
fn removed_models_are_unloaded_and_broken_configs_keep_the_old_state() {
    let repo = Repo::new("remove");
    repo.put("a/1/model.onnx", "1");
    repo.put("b/1/model.onnx", "5");
    let manager = repo.manager();
    manager.sync_blocking().unwrap();
    repo.put("a/config.toml", "this is = = not toml");
    repo.remove("b");
    manager.sync_blocking().unwrap();
    assert_eq!(
        answer(manager.registry(), "a"),
        1.0,
        "a keeps serving despite its broken config"
    );
    assert!(manager.registry().resolve("b", None).is_err());
}

#[test]
fn traffic_weights_from_config_and_at_run_time() {
    let repo = Repo::new("traffic");
    repo.put("m/1/model.onnx", "1");
    repo.put("m/2/model.onnx", "2");
    repo.put(
        "m/config.toml",
        "version_policy = \"all\"\n[traffic]\nweights = { \"1\" = 100, \"2\" = 0 }\n",
    );
    let manager = repo.manager();
    manager.sync_blocking().unwrap();
    for _ in 0..50 {
        assert_eq!(manager.registry().resolve("m", None).unwrap().version, 1);
    }
    manager.set_traffic("m", vec![(1, 0), (2, 1)]).unwrap();
    for _ in 0..50 {
        assert_eq!(manager.registry().resolve("m", None).unwrap().version, 2);
    }
    assert!(manager.set_traffic("m", vec![(7, 1)]).is_err());
}

#[tokio::test]
async fn the_watcher_picks_up_new_versions() {
    let repo = Repo::new("watch");
    repo.put("m/1/model.onnx", "1");
    let manager = repo.manager();
    manager.sync().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(manager.clone().watch(async {
        let _ = stop_rx.await;
    }));
    repo.put("m/2/model.onnx", "2");
    let mut seen = 0.0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = answer(manager.registry(), "m");
        if seen == 2.0 {
            break;
        }
    }
    assert_eq!(seen, 2.0);
    stop_tx.send(()).unwrap();
    task.await.unwrap();
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn management_needs_the_token() {
    let repo = Repo::new("mgmt");
    repo.put("m/1/model.onnx", "1");
    let manager = repo.manager();
    manager.sync().await.unwrap();
    const TOKEN: &str = "0123456789abcdef-secret";
    let app = router(manager.clone(), Token::new(TOKEN).unwrap());

    let (status, _) = call(&app, "POST", "/v2/repository/index", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &app,
        "POST",
        "/v2/repository/index",
        Some("0123456789abcdef-secreT"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        "POST",
        "/v2/repository/models/m/unload",
        Some("short"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = call(&app, "POST", "/v2/repository/index", Some(TOKEN), "{}").await;
    assert_eq!(status, StatusCode::OK);
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(index[0]["name"], "m");
    assert_eq!(index[0]["state"], "READY");

    let (status, _) = call(
        &app,
        "POST",
        "/v2/repository/models/m/unload",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(manager.registry().resolve("m", None).is_err());
    // A poll does not bring an unloaded model back.
    manager.sync().await.unwrap();
    assert!(manager.registry().resolve("m", None).is_err());
    let (status, _) = call(
        &app,
        "POST",
        "/v2/repository/models/m/load",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer(manager.registry(), "m"), 1.0);

    let (status, body) = call(
        &app,
        "POST",
        "/v2/repository/models/nope/load",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(
        &app,
        "POST",
        "/v2/repository/models/..%2Fetc/load",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = call(
        &app,
        "PUT",
        "/v2/repository/models/m/traffic",
        Some(TOKEN),
        r#"{"weights": {"1": 3}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = call(
        &app,
        "GET",
        "/v2/repository/models/m/traffic",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(body, r#"{"weights":{"1":3}}"#);
    assert!(format!("{:?}", Token::new(TOKEN).unwrap()).contains("redacted"));
}

fn shadow_count(model: &str, result: &str) -> u64 {
    let needle = format!("model=\"{model}\",result=\"{result}\",shadow_version=\"2\"}} ");
    inferd_core::metrics::render()
        .lines()
        .find_map(|l| {
            l.strip_prefix("inferd_shadow_requests_total{")
                .and_then(|l| l.strip_prefix(needle.as_str()))
        })
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn shadow_copies_requests_and_counts_disagreement_without_answering() {
    let repo = Repo::new("shadow");
    repo.put("sh/1/model.onnx", "1");
    repo.put("sh/2/model.onnx", "2");
    repo.put(
        "sh/config.toml",
        "version_policy = \"all\"\n[traffic]\nweights = { \"1\" = 1 }\n[shadow]\nversion = 2\nshare = 1.0\n",
    );
    let manager = repo.manager();
    manager.sync().await.unwrap();
    let executor = inferd_core::executor::Executor::new(1, 16);
    for _ in 0..20 {
        let primary = manager.registry().resolve("sh", None).unwrap();
        assert_eq!(primary.version, 1);
        let out = primary.infer(&executor, vec![]).await.unwrap();
        // The caller gets the primary's answer only.
        assert_eq!(out[0].tensor.data(), &TensorData::F32(vec![1.0]));
    }
    // The worker catches up off the request path; version 2 answers 2, so all disagree.
    let mut seen = 0;
    for _ in 0..200 {
        seen = shadow_count("sh", "disagree");
        if seen == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, 20);
    assert_eq!(shadow_count("sh", "agree"), 0);
    // A rescan keeps the same worker (counts continue), and removing [shadow] stops copying.
    manager.sync().await.unwrap();
    repo.put(
        "sh/config.toml",
        "version_policy = \"all\"\n[traffic]\nweights = { \"1\" = 1 }\n",
    );
    manager.sync().await.unwrap();
    let primary = manager.registry().resolve("sh", None).unwrap();
    primary.infer(&executor, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shadow_count("sh", "disagree"), 20);
}

/// A loader whose file `block` hangs (as a read from a hung mount does) until the gate's
/// sender is dropped, then loads as the model `2`; every call is counted.
fn gated_loader(gate: std::sync::mpsc::Receiver<()>, calls: Arc<AtomicUsize>) -> LoadFn {
    let gate = Arc::new(Mutex::new(gate));
    let inner = loader();
    Arc::new(move |req: &LoadRequest<'_>| {
        if fs::read_to_string(req.file).is_ok_and(|t| t.trim() == "block") {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = gate.lock().unwrap().recv();
            let meta = inner(&LoadRequest {
                file: &req.root.join("two"),
                ..*req
            })?;
            return Ok(meta);
        }
        inner(req)
    })
}

fn model_state(model: &str, version: &str, state: &str) -> bool {
    let needle = format!(
        "inferd_model_state{{model=\"{model}\",state=\"{state}\",version=\"{version}\"}} 1"
    );
    inferd_core::metrics::render().contains(&needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_load_never_blocks_index_or_traffic_and_is_retried_after_its_thread_returns() {
    let repo = Repo::new("stuck");
    repo.put("two", "2");
    repo.put("stuck/1/model.onnx", "1");
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut config = repo.config();
    config.load_timeout = Duration::from_millis(300);
    let manager = Manager::new(config, Registry::new(), gated_loader(gate, calls.clone()));
    manager.sync().await.unwrap();
    const TOKEN: &str = "0123456789abcdef-secret";
    let app = router(manager.clone(), Token::new(TOKEN).unwrap());

    repo.put("stuck/2/model.onnx", "block");
    // The management load call waits for the stuck load (asynchronously)...
    let pending = {
        let app = app.clone();
        tokio::spawn(async move {
            call(
                &app,
                "POST",
                "/v2/repository/models/stuck/load",
                Some(TOKEN),
                "",
            )
            .await
        })
    };
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // ...while index and traffic calls answer at once, from state the load never locks.
    let started = Instant::now();
    let (status, body) = call(&app, "POST", "/v2/repository/index", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#""version":"2","state":"LOADING""#),
        "{body}"
    );
    let (status, _) = call(
        &app,
        "PUT",
        "/v2/repository/models/stuck/traffic",
        Some(TOKEN),
        r#"{"weights": {"1": 1}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        "GET",
        "/v2/repository/models/stuck/traffic",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    manager.set_traffic("stuck", vec![(1, 1)]).unwrap();
    let _ = manager.index();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(!pending.is_finished(), "the load is still stuck");
    assert_eq!(answer(manager.registry(), "stuck"), 1.0);

    // Past the timeout the load is abandoned and reported; version 1 keeps serving (so the
    // call itself succeeds: the model is served).
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let index = manager.index();
    let v2 = index
        .iter()
        .find(|e| e.version.as_deref() == Some("2"))
        .unwrap();
    assert_eq!(v2.state, "UNAVAILABLE");
    assert_eq!(v2.reason, "loading timed out after 0.3 s; will retry");
    assert!(model_state("stuck", "2", "failed"));
    assert_eq!(answer(manager.registry(), "stuck"), 1.0);

    // Past the backoff, but the abandoned thread is still stuck: no second attempt.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..3 {
        let report = manager.sync().await.unwrap();
        assert!(report.failed.is_empty(), "{report:?}");
    }
    let (status, _) = call(
        &app,
        "POST",
        "/v2/repository/models/stuck/load",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "version 1 is still served");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Once the thread returns (its model is discarded), the next sync tries again and loads.
    drop(release);
    let mut seen = 1.0;
    for _ in 0..200 {
        manager.sync().await.unwrap();
        seen = answer(manager.registry(), "stuck");
        if seen == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, 2.0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one abandoned try, one retry"
    );
    assert!(manager.index().iter().all(|e| e.state == "READY"));
}

#[tokio::test]
async fn a_scan_past_its_timeout_is_reported_and_retried_at_the_next_poll() {
    let repo = Repo::new("scan-timeout");
    repo.put("m/1/model.onnx", "1");
    // A thousand models: a scan takes ten milliseconds or more, far past 1 ms.
    for i in 0..1000 {
        fs::create_dir_all(repo.0.join(format!("slow/x{i}/1"))).unwrap();
    }
    let mut config = repo.config();
    config.root = repo.0.join("slow");
    config.scan_timeout = Duration::from_millis(1);
    let manager = Manager::new(config, Registry::new(), loader());
    let e = manager.sync().await.unwrap_err();
    assert_eq!(e.kind, inferd_core::ErrorKind::DeadlineExceeded, "{e}");
    assert!(e.message.contains("timed out after 0.001 s"), "{e}");
    // Once the repository is small again, a later poll scans it (never two scans at once).
    fs::remove_dir_all(repo.0.join("slow")).unwrap();
    fs::rename(repo.0.join("m"), repo.0.join("m-moved")).unwrap();
    fs::create_dir_all(repo.0.join("slow")).unwrap();
    fs::rename(repo.0.join("m-moved"), repo.0.join("slow/m")).unwrap();
    let mut synced = false;
    for _ in 0..200 {
        if manager.sync().await.is_ok() {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(synced);
    assert_eq!(answer(manager.registry(), "m"), 1.0);
}

#[test]
fn a_plus_three_directory_is_reported_and_other_versions_still_load() {
    let repo = Repo::new("plus");
    repo.put("m/1/model.onnx", "1");
    repo.put("m/+3/model.onnx", "3");
    let manager = repo.manager();
    // At start-up: no failure (start-up would exit on one), version 1 serves.
    let report = manager.sync_blocking().unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(answer(manager.registry(), "m"), 1.0);
    let ignored = manager
        .index()
        .into_iter()
        .find(|e| e.version.as_deref() == Some("+3"))
        .unwrap();
    assert_eq!(ignored.state, "UNAVAILABLE");
    assert!(ignored.reason.contains("ignored"), "{ignored:?}");
    // On hot reload, the model's new versions still load.
    repo.put("m/2/model.onnx", "2");
    repo.put("m/02/model.onnx", "20");
    let report = manager.sync_blocking().unwrap();
    assert_eq!(report.loaded, vec![("m".to_string(), 2)]);
    assert_eq!(answer(manager.registry(), "m"), 2.0);
    let shown: Vec<_> = manager.index().into_iter().map(|e| e.version).collect();
    assert_eq!(
        shown,
        [Some("+3".into()), Some("02".into()), Some("2".into())]
    );
}

#[test]
fn a_config_symlinked_outside_the_root_is_refused_without_showing_it() {
    let outside = Repo::new("outside-config");
    outside.put("config.toml", "secret_key = \"hunter2\"\n");
    let repo = Repo::new("symlinked-config");
    repo.put("m/1/model.onnx", "1");
    let manager = repo.manager();
    manager.sync_blocking().unwrap();
    std::os::unix::fs::symlink(outside.0.join("config.toml"), repo.0.join("m/config.toml"))
        .unwrap();
    let report = manager.sync_blocking().unwrap();
    let (name, version, e) = &report.failed[0];
    assert_eq!((name.as_str(), *version), ("m", None));
    assert_eq!(e.message, "config.toml points outside the repository");
    let reason = &manager.index()[0].reason;
    for leak in ["secret", "hunter2", &*outside.0.to_string_lossy()] {
        assert!(!format!("{report:?} {reason}").contains(leak), "{leak}");
    }
    assert_eq!(
        answer(manager.registry(), "m"),
        1.0,
        "what served before stays"
    );
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn fifos_and_dev_zero_are_refused_without_blocking_and_reload_goes_on() {
    let repo = Repo::new("fifo");
    repo.put("fifo/1/model.onnx", "1");
    repo.put("conf/1/model.onnx", "1");
    repo.put("zero/1/model.onnx", "1");
    repo.put("zconf/1/model.onnx", "1");
    let manager = repo.manager();
    manager.sync().await.unwrap();
    fs::create_dir_all(repo.0.join("fifo/2")).unwrap();
    mkfifo(&repo.0.join("fifo/2/model.onnx"));
    mkfifo(&repo.0.join("conf/config.toml"));
    fs::create_dir_all(repo.0.join("zero/2")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", repo.0.join("zero/2/model.onnx")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", repo.0.join("zconf/config.toml")).unwrap();
    // Opening either FIFO would block, reading /dev/zero would never end: the sync returns.
    let report = tokio::time::timeout(Duration::from_secs(5), manager.sync())
        .await
        .expect("a sync that opened a FIFO would hang")
        .unwrap();
    let mut failed: Vec<_> = report
        .failed
        .iter()
        .map(|(n, v, e)| (n.as_str(), *v, e.message.as_str()))
        .collect();
    failed.sort();
    let fifo = "is not a regular file (FIFOs, sockets and devices are never read)";
    assert_eq!(
        failed,
        [
            ("conf", None, &*format!("config.toml {fifo}")),
            ("fifo", Some(2), &*format!("model.onnx {fifo}")),
            ("zconf", None, "config.toml points outside the repository"),
            ("zero", Some(2), "model.onnx points outside the repository"),
        ]
    );
    for name in ["fifo", "conf", "zero", "zconf"] {
        assert_eq!(answer(manager.registry(), name), 1.0, "{name}");
    }
    // Hot reload goes on once the FIFO is replaced.
    fs::remove_file(repo.0.join("fifo/2/model.onnx")).unwrap();
    repo.put("fifo/3/model.onnx", "3");
    manager.sync().await.unwrap();
    assert_eq!(answer(manager.registry(), "fifo"), 3.0);
    assert!(!manager
        .index()
        .iter()
        .any(|e| e.name == "fifo" && e.state != "READY"));
}

#[test]
fn the_default_model_stays_when_a_second_model_arrives() {
    let repo = Repo::new("default");
    repo.put("a/1/model.onnx", "1");
    let manager = repo.manager();
    let default = |m: &Manager| m.registry().snapshot().default_model.clone();
    manager.sync_blocking().unwrap();
    assert_eq!(default(&manager).as_deref(), Some("a"));
    repo.put("b/1/model.onnx", "2");
    manager.sync_blocking().unwrap();
    assert_eq!(
        default(&manager).as_deref(),
        Some("a"),
        "adding b breaks no client"
    );
    assert_eq!(answer(manager.registry(), "b"), 2.0);
    repo.remove("a");
    manager.sync_blocking().unwrap();
    assert_eq!(
        default(&manager).as_deref(),
        Some("b"),
        "the only model left"
    );
    repo.put("c/1/model.onnx", "3");
    manager.sync_blocking().unwrap();
    assert_eq!(default(&manager).as_deref(), Some("b"));
    // Started with several models and no --default-model: none is the default.
    let fresh = repo.manager();
    fresh.sync_blocking().unwrap();
    assert_eq!(default(&fresh), None);
    // --default-model wins.
    let mut config = repo.config();
    config.default_model = Some("c".into());
    let chosen = Manager::new(config, Registry::new(), loader());
    chosen.sync_blocking().unwrap();
    assert_eq!(default(&chosen).as_deref(), Some("c"));
}
