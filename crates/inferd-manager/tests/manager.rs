//! The manager against a real directory tree, with a stand-in runtime whose "model file" is
//! a number (the model answers it) or the word `corrupt` (it fails to load).

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    fn manager(&self) -> Manager {
        let config = ManagerConfig {
            root: self.0.clone(),
            poll_interval: Duration::from_millis(50),
            default_model: None,
        };
        Manager::new(config, Registry::new(), loader())
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
    manager.sync().unwrap();
    assert_eq!(answer(manager.registry(), "m"), 1.0);
    let held = manager.registry().resolve("m", None).unwrap();

    repo.put("m/2/model.onnx", "2");
    let report = manager.sync().unwrap();
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
    manager.sync().unwrap();
    repo.put("m/2/model.onnx", "corrupt");
    let report = manager.sync().unwrap();
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
    assert!(manager.sync().unwrap().failed.is_empty());
    // ...but a fixed one is.
    repo.put("m/2/model.onnx", "22");
    manager.sync().unwrap();
    assert_eq!(answer(manager.registry(), "m"), 22.0);
}

#[test]
fn removed_models_are_unloaded_and_broken_configs_keep_the_old_state() {
    let repo = Repo::new("remove");
    repo.put("a/1/model.onnx", "1");
    repo.put("b/1/model.onnx", "5");
    let manager = repo.manager();
    manager.sync().unwrap();
    repo.put("a/config.toml", "this is = = not toml");
    repo.remove("b");
    manager.sync().unwrap();
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
    manager.sync().unwrap();
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
    manager.sync().unwrap();
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
    manager.sync().unwrap();
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
    manager.sync().unwrap();
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
    manager.sync().unwrap();
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
    manager.sync().unwrap();
    repo.put(
        "sh/config.toml",
        "version_policy = \"all\"\n[traffic]\nweights = { \"1\" = 1 }\n",
    );
    manager.sync().unwrap();
    let primary = manager.registry().resolve("sh", None).unwrap();
    primary.infer(&executor, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shadow_count("sh", "disagree"), 20);
}
