//! Keeping the registry in step with the repository on disk.
//!
//! [`Manager::sync`] scans the repository, loads (and warms up) every selected version that is
//! new or whose file changed, and publishes a new registry snapshot in one swap. Requests hold
//! an `Arc` to the version they started on, so a swap never cuts one short, and a version that
//! leaves the snapshot is freed when its last request ends. A version that fails to load is
//! recorded (log, index) and whatever served before keeps serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, ModelVersions, Registry, Snapshot};
use inferd_core::repository::{self, ModelConfig};
use inferd_core::routing::TrafficSplit;
use inferd_core::shadow::ShadowTap;
use inferd_core::{Error, Result};

/// What the binary's loader is asked to load: it knows every runtime, and attaches batching
/// from the config.
pub struct LoadRequest<'a> {
    pub name: &'a str,
    pub version: u64,
    pub file: &'a Path,
    pub config: &'a ModelConfig,
}

/// Loads, warms up and wraps one model version.
pub type LoadFn = Arc<dyn Fn(&LoadRequest<'_>) -> Result<LoadedModel> + Send + Sync>;

#[derive(Clone)]
pub struct ManagerConfig {
    pub root: PathBuf,
    /// How often the repository is rescanned when no file event arrives (the fallback for
    /// file systems without events, such as some network volumes).
    pub poll_interval: Duration,
    /// The model for name-less APIs; default: the only model, if there is one.
    pub default_model: Option<String>,
}

/// A model version's state, as the repository index reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub state: &'static str,
    pub reason: String,
}

/// What one sync did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub loaded: Vec<(String, u64)>,
    pub unloaded: Vec<(String, u64)>,
    pub failed: Vec<(String, Option<u64>, String)>,
}

/// File identity: a changed size or modification time means "load again".
type Fingerprint = (u64, Option<SystemTime>);

struct Entry {
    fingerprint: Fingerprint,
    model: Arc<LoadedModel>,
}

#[derive(Default)]
struct State {
    loaded: BTreeMap<(String, u64), Entry>,
    /// Failures by model version (`None`: the model as a whole, e.g. a bad config), with the
    /// fingerprint that failed so the same broken file is not retried on every poll.
    failed: BTreeMap<(String, Option<u64>), (Option<Fingerprint>, String)>,
    /// Models unloaded through the management API; they stay out until loaded again.
    unloaded: BTreeSet<String>,
    /// Traffic weights set at run time, overriding the config's.
    weights: BTreeMap<String, Vec<(u64, u32)>>,
    /// Versions served per model after the last sync.
    served: BTreeMap<String, Vec<u64>>,
    configs: BTreeMap<String, ModelConfig>,
    /// Running shadow taps by model, kept across syncs so that a rescan does not restart
    /// their workers.
    shadows: BTreeMap<String, ShadowEntry>,
    /// Models whose shadow version is not served (already warned about).
    shadow_missing: BTreeSet<(String, u64)>,
}

struct ShadowEntry {
    target: Arc<LoadedModel>,
    share: f64,
    queue: usize,
    tap: Arc<ShadowTap>,
}

/// Owns the repository → registry sync. Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    config: ManagerConfig,
    registry: Registry,
    load: LoadFn,
    state: Mutex<State>,
    executor: OnceLock<Executor>,
}

impl Manager {
    pub fn new(config: ManagerConfig, registry: Registry, load: LoadFn) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                registry,
                load,
                state: Mutex::new(State::default()),
                executor: OnceLock::new(),
            }),
        }
    }

    /// The executor that shadow versions run on (the server's, so that shadow work is counted
    /// against the same threads). Set it before the first sync; without it the manager starts
    /// a one-thread executor of its own when a shadow is first configured.
    pub fn with_executor(self, executor: Executor) -> Self {
        if self.inner.executor.set(executor).is_err() {
            tracing::warn!("the manager's executor was already chosen; keeping it");
        }
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn root(&self) -> &Path {
        &self.inner.config.root
    }

    /// Brings the registry in line with the repository. Blocking (it loads files): call it
    /// from a blocking thread. Syncs are serialised.
    pub fn sync(&self) -> Result<SyncReport> {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_locked(&mut state)
    }

    fn sync_locked(&self, state: &mut State) -> Result<SyncReport> {
        let plan = repository::scan(&self.inner.config.root)?;
        let mut report = SyncReport::default();
        let mut served: BTreeMap<String, Vec<u64>> = BTreeMap::new();

        for (name, problem) in &plan.problems {
            // A broken config or layout: keep whatever this model served before.
            let key = (name.clone(), None);
            if state.failed.get(&key).map(|(_, r)| r) != Some(&problem.message) {
                tracing::warn!(model = %name, error = %problem, "model in repository is unusable; keeping what served before");
                report
                    .failed
                    .push((name.clone(), None, problem.message.clone()));
            }
            state.failed.insert(key, (None, problem.message.clone()));
            if let Some(before) = state.served.get(name) {
                if !state.unloaded.contains(name) {
                    served.insert(name.clone(), before.clone());
                }
            }
        }

        for model in &plan.models {
            state.failed.remove(&(model.name.clone(), None));
            if state.unloaded.contains(&model.name) {
                continue;
            }
            state
                .configs
                .insert(model.name.clone(), model.config.clone());
            let mut ready = Vec::new();
            for v in &model.versions {
                let key = (model.name.clone(), v.version);
                let fingerprint = fingerprint(&v.file);
                if state
                    .loaded
                    .get(&key)
                    .is_some_and(|e| e.fingerprint == fingerprint)
                {
                    ready.push(v.version);
                    continue;
                }
                let failed_key = (model.name.clone(), Some(v.version));
                if state
                    .failed
                    .get(&failed_key)
                    .is_some_and(|(fp, _)| *fp == Some(fingerprint))
                {
                    continue; // same broken file as last time
                }
                let started = Instant::now();
                inferd_core::metrics::set_model_state(&model.name, v.version, "loading");
                let request = LoadRequest {
                    name: &model.name,
                    version: v.version,
                    file: &v.file,
                    config: &model.config,
                };
                let result = (self.inner.load)(&request);
                inferd_core::metrics::ModelLoaded {
                    model: &model.name,
                    version: v.version,
                    elapsed: started.elapsed(),
                    ok: result.is_ok(),
                }
                .emit();
                match result {
                    Ok(loaded) => {
                        tracing::info!(model = %model.name, version = v.version,
                            elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "model version loaded");
                        state.failed.remove(&failed_key);
                        state.loaded.insert(
                            key,
                            Entry {
                                fingerprint,
                                model: Arc::new(loaded),
                            },
                        );
                        report.loaded.push((model.name.clone(), v.version));
                        ready.push(v.version);
                    }
                    Err(e) => {
                        tracing::warn!(model = %model.name, version = v.version, error = %e,
                            error_type = e.kind.error_type(), "model version failed to load; previous versions keep serving");
                        report.failed.push((
                            model.name.clone(),
                            Some(v.version),
                            e.message.clone(),
                        ));
                        state
                            .failed
                            .insert(failed_key, (Some(fingerprint), e.message));
                    }
                }
            }
            if ready.is_empty() {
                // Nothing new loads: the versions that served before keep serving.
                if let Some(before) = state.served.get(&model.name) {
                    ready = before.clone();
                }
            }
            if !ready.is_empty() {
                served.insert(model.name.clone(), ready);
            }
        }

        // Forget what is no longer served; memory returns when the last request lets go.
        let keep: BTreeSet<(String, u64)> = served
            .iter()
            .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), *v)))
            .collect();
        let gone: Vec<_> = state
            .loaded
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            state.loaded.remove(&key);
            inferd_core::metrics::set_model_state(&key.0, key.1, "unloading");
            inferd_core::metrics::forget_model(&key.0, key.1);
            tracing::info!(model = %key.0, version = key.1, "model version unloaded");
            report.unloaded.push(key);
        }
        state.failed.retain(|(name, _), _| {
            plan.models.iter().any(|m| &m.name == name)
                || plan.problems.iter().any(|(n, _)| n == name)
        });
        state.served = served;
        self.attach_shadows(state);
        self.publish(state);
        Ok(report)
    }

    /// Keeps one shadow tap per model whose config has a `[shadow]` table and whose shadow
    /// version is served; a tap whose target, share and queue size are unchanged survives the
    /// rescan (its worker and queue with it), the others are replaced or dropped.
    fn attach_shadows(&self, state: &mut State) {
        let mut next = BTreeMap::new();
        let mut missing = BTreeSet::new();
        for name in state.served.keys() {
            let Some(cfg) = state.configs.get(name).and_then(|c| c.shadow.as_ref()) else {
                continue;
            };
            let key = (name.clone(), cfg.version);
            let target = state
                .served
                .get(name)
                .filter(|vs| vs.contains(&cfg.version))
                .and_then(|_| state.loaded.get(&key))
                .map(|e| Arc::clone(&e.model));
            let Some(target) = target else {
                // Once per outage, not on every poll.
                if !state.shadow_missing.contains(&key) {
                    tracing::warn!(
                        model = %name,
                        shadow_version = cfg.version,
                        "the shadow version is not served; no shadow traffic"
                    );
                }
                missing.insert(key);
                continue;
            };
            let entry = match state.shadows.remove(name) {
                Some(e)
                    if Arc::ptr_eq(&e.target, &target)
                        && e.share == cfg.share
                        && e.queue == cfg.max_queue_size =>
                {
                    e
                }
                _ => ShadowEntry {
                    tap: ShadowTap::start(
                        Arc::clone(&target),
                        self.executor().clone(),
                        cfg.share,
                        cfg.max_queue_size,
                    ),
                    target,
                    share: cfg.share,
                    queue: cfg.max_queue_size,
                },
            };
            next.insert(name.clone(), entry);
        }
        state.shadows = next;
        state.shadow_missing = missing;
    }

    /// The executor shadow versions run on: the server's, or a small one of the manager's own
    /// when none was given.
    fn executor(&self) -> &Executor {
        self.inner.executor.get_or_init(|| Executor::new(1, 64))
    }

    /// Builds and swaps in the registry snapshot for the current state.
    fn publish(&self, state: &State) {
        let mut snapshot = Snapshot::default();
        for (name, versions) in &state.served {
            let config = state.configs.get(name).cloned().unwrap_or_default();
            let mut entry = ModelVersions {
                labels: config.labels.clone(),
                ..Default::default()
            };
            for v in versions {
                if let Some(e) = state.loaded.get(&(name.clone(), *v)) {
                    entry.versions.insert(*v, Arc::clone(&e.model));
                }
            }
            let weights = state
                .weights
                .get(name)
                .cloned()
                .unwrap_or_else(|| config.traffic_weights());
            let sticky = config
                .traffic
                .as_ref()
                .and_then(|t| t.sticky_header.clone());
            entry.split = TrafficSplit::new(&weights, versions, sticky).map(Arc::new);
            if config
                .default_version
                .is_some_and(|d| versions.contains(&d))
                && entry.split.is_none()
            {
                let d = config.default_version.unwrap_or_default();
                entry.split = TrafficSplit::new(&[(d, 1)], versions, None).map(Arc::new);
            }
            entry.set_shadow(state.shadows.get(name).map(|e| Arc::clone(&e.tap)));
            snapshot.models.insert(name.clone(), entry);
        }
        snapshot.default_model = match &self.inner.config.default_model {
            Some(name) => Some(name.clone()),
            None if snapshot.models.len() == 1 => snapshot.models.keys().next().cloned(),
            None => None,
        };
        self.inner.registry.publish(snapshot);
    }

    /// The repository index (Open Inference Protocol repository extension): every model on
    /// disk or in memory, with each version's state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (name, version) in state.loaded.keys() {
            let serving = state.served.get(name).is_some_and(|v| v.contains(version));
            out.push(IndexEntry {
                name: name.clone(),
                version: Some(version.to_string()),
                state: if serving { "READY" } else { "UNAVAILABLE" },
                reason: String::new(),
            });
        }
        for ((name, version), (_, reason)) in &state.failed {
            out.push(IndexEntry {
                name: name.clone(),
                version: version.map(|v| v.to_string()),
                state: "UNAVAILABLE",
                reason: reason.clone(),
            });
        }
        for name in &state.unloaded {
            out.push(IndexEntry {
                name: name.clone(),
                version: None,
                state: "UNAVAILABLE",
                reason: "unloaded".into(),
            });
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }

    /// Loads (or reloads) a model from the repository, retrying versions that failed before.
    pub fn load_model(&self, name: &str) -> Result<SyncReport> {
        repository::check_model_name(name)?;
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        state.unloaded.remove(name);
        state.failed.retain(|(n, _), _| n != name);
        let report = self.sync_locked(&mut state)?;
        if !state.served.contains_key(name) {
            let reason = state
                .failed
                .iter()
                .find(|((n, _), _)| n == name)
                .map(|(_, (_, r))| r.clone())
                .unwrap_or_else(|| format!("model '{name}' is not in the repository"));
            return Err(Error::new(inferd_core::ErrorKind::ModelNotFound, reason));
        }
        Ok(report)
    }

    /// Stops serving a model until it is loaded again.
    pub fn unload_model(&self, name: &str) -> Result<SyncReport> {
        repository::check_model_name(name)?;
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.served.contains_key(name) {
            return Err(Error::not_found(format!("model '{name}' is not loaded")));
        }
        state.unloaded.insert(name.to_owned());
        self.sync_locked(&mut state)
    }

    /// Sets a model's traffic weights at run time (version → weight); versions must be served.
    pub fn set_traffic(&self, name: &str, weights: Vec<(u64, u32)>) -> Result<()> {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let served = state
            .served
            .get(name)
            .ok_or_else(|| Error::not_found(format!("model '{name}' is not loaded")))?;
        if let Some((v, _)) = weights.iter().find(|(v, _)| !served.contains(v)) {
            return Err(Error::bad_request(format!(
                "model '{name}' does not serve version {v}"
            )));
        }
        if weights.iter().all(|(_, w)| *w == 0) {
            return Err(Error::bad_request(
                "traffic weights need at least one positive weight",
            ));
        }
        state.weights.insert(name.to_owned(), weights);
        self.publish(&state);
        Ok(())
    }

    /// Watches the repository for changes until `stop` resolves: file events trigger a sync at
    /// once (after a short debounce), and a poll every `poll_interval` catches what events miss.
    pub async fn watch(self, stop: impl std::future::Future<Output = ()>) {
        use notify::Watcher;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(()); // a pending wake-up is as good as two
            }
        })
        .and_then(|mut w| {
            w.watch(&self.inner.config.root, notify::RecursiveMode::Recursive)
                .map(|()| w)
        });
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "no file events for the model repository; polling only");
                None
            }
        };
        tokio::pin!(stop);
        let poll = self.inner.config.poll_interval;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = rx.recv() => {
                    // Files arrive in several writes: let a burst settle before scanning.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep(poll) => {}
            }
            let manager = self.clone();
            match tokio::task::spawn_blocking(move || manager.sync()).await {
                Ok(Ok(report)) if report != SyncReport::default() => {
                    tracing::debug!(?report, "repository synced")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "repository scan failed; serving what was loaded")
                }
                Err(e) => tracing::error!(error = %e, "repository sync panicked"),
            }
        }
    }
}

fn fingerprint(file: &Path) -> Fingerprint {
    match std::fs::metadata(file) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (0, None),
    }
}
