//! Keeping the registry in step with the repository on disk.
//!
//! [`Manager::sync`] scans the repository, loads (and warms up) every selected version that is
//! new or whose file changed, and publishes a new registry snapshot in one swap. Requests hold
//! an `Arc` to the version they started on, so a swap never cuts one short, and a version that
//! leaves the snapshot is freed when its last request ends. A version that fails to load is
//! recorded (log, index) and whatever served before keeps serving.
//!
//! No async worker ever waits on a file: the scan and each load run on a thread of their own
//! under a timeout ([`crate::offload`]); syncs are serialised by an async mutex; and the state
//! that index and traffic calls read sits behind a std mutex held only for in-memory work,
//! never across a scan or a load. A load past its timeout is abandoned, reported and retried
//! later with backoff, but never while its thread is still running, so a hung mount costs one
//! thread per version, not one per poll.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use inferd_core::executor::Executor;
use inferd_core::registry::{LoadedModel, Registry};
use inferd_core::repository::{self, ModelConfig, RepositoryPlan};
use inferd_core::shadow::ShadowTap;
use inferd_core::{Error, ErrorKind, Result};

use crate::offload::{self, Done, Outcome};

mod snapshot;

/// What the binary's loader is asked to load: it knows every runtime, and attaches batching
/// from the config.
pub struct LoadRequest<'a> {
    pub name: &'a str,
    pub version: u64,
    /// The repository root, resolved: the file must still be inside it when it is opened.
    pub root: &'a Path,
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
    /// The model for name-less APIs; default: the one that had that role before, else the
    /// only model, if there is one.
    pub default_model: Option<String>,
    /// How long one version may take to load and warm up before it is abandoned.
    pub load_timeout: Duration,
    /// How long one scan of the repository (listing, stat, config files) may take.
    pub scan_timeout: Duration,
}

/// Longest wait before a timed-out load is tried again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

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
    /// Newly failed models (no version) and versions; a timed-out load has the kind
    /// [`ErrorKind::DeadlineExceeded`].
    pub failed: Vec<(String, Option<u64>, Error)>,
}

/// File identity: a changed size or modification time means "load again".
type Fingerprint = (u64, Option<SystemTime>);

struct Entry {
    fingerprint: Fingerprint,
    model: Arc<LoadedModel>,
}

struct Failure {
    /// The file that failed (`None`: the model or version directory itself is unusable), so
    /// the same broken file is not retried on every poll.
    fingerprint: Option<Fingerprint>,
    reason: String,
    /// After a timeout: when to try again, whatever the file, and how many tries timed out.
    retry: Option<(Instant, u32)>,
}

#[derive(Default)]
struct State {
    loaded: BTreeMap<(String, u64), Entry>,
    /// Failures by model version (`None`: the model as a whole, e.g. a bad config).
    failed: BTreeMap<(String, Option<u64>), Failure>,
    /// Loads whose thread may still be running: one that timed out stays here until its
    /// thread returns, and no second load of that version starts before.
    loading: BTreeMap<(String, u64), Done>,
    /// Directories that are not versions, by model: (name as shown, reason).
    ignored: BTreeMap<String, Vec<(String, String)>>,
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
    /// The model name-less APIs got at the last publish: it keeps the role while served.
    default_model: Option<String>,
    /// Whether the "several models, no --default-model" warning was given.
    warned_several: bool,
}

struct ShadowEntry {
    target: Arc<LoadedModel>,
    share: f64,
    queue: usize,
    tap: Arc<ShadowTap>,
}

/// One version to load in this sync.
struct Job {
    name: String,
    version: u64,
    root: PathBuf,
    file: PathBuf,
    config: ModelConfig,
    fingerprint: Fingerprint,
    /// Earlier tries of this file that timed out.
    timeouts: u32,
}

enum LoadResult {
    Loaded(LoadedModel),
    Failed(Error),
    TimedOut,
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
    /// Held for in-memory work only (microseconds): never across a scan or a load.
    state: Mutex<State>,
    /// Serialises syncs; holds the scan that was last started, which may still be running
    /// after a timeout (no second scan starts until it returns).
    syncing: tokio::sync::Mutex<Option<Done>>,
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
                syncing: tokio::sync::Mutex::new(None),
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

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the registry in line with the repository. Syncs are serialised; the files are
    /// read on threads of their own, under the configured timeouts.
    pub async fn sync(&self) -> Result<SyncReport> {
        let mut scan = self.inner.syncing.lock().await;
        self.sync_locked(&mut scan).await
    }

    /// [`Manager::sync`] for start-up, before any async runtime exists: runs it on a small
    /// runtime of its own. Panics if called from inside a runtime.
    pub fn sync_blocking(&self) -> Result<SyncReport> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|_| Error::internal("cannot start the runtime that loads models"))?
            .block_on(self.sync())
    }

    async fn sync_locked(&self, scan: &mut Option<Done>) -> Result<SyncReport> {
        let plan = self.scan(scan).await?;
        let mut report = SyncReport::default();
        let jobs = self.plan_loads(&plan, &mut report);
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let result = self.load(&job).await;
            results.push((job, result));
        }
        self.apply(&plan, results, &mut report);
        Ok(report)
    }

    /// Scans the repository on a thread of its own. After a timeout, no new scan starts until
    /// the abandoned one returns (a hung mount costs one thread, not one per poll).
    async fn scan(&self, last: &mut Option<Done>) -> Result<RepositoryPlan> {
        if last.as_ref().is_some_and(|d| !d.is_done()) {
            return Err(Error::new(
                ErrorKind::DeadlineExceeded,
                "the repository scan that timed out earlier has not returned yet",
            ));
        }
        let root = self.inner.config.root.clone();
        let (done, pending) = offload::start("inferd-scan", move || repository::scan(&root))?;
        // Recorded before waiting, so that even a sync dropped mid-way leaves it known.
        *last = Some(done);
        let timeout = self.inner.config.scan_timeout;
        let outcome = pending.wait(timeout).await;
        if !matches!(outcome, Outcome::TimedOut) {
            *last = None; // its thread may still be finishing, but has nothing left to block on
        }
        match outcome {
            Outcome::Finished(plan) => plan,
            Outcome::Panicked => Err(Error::internal("the repository scan failed")),
            Outcome::TimedOut => Err(Error::new(
                ErrorKind::DeadlineExceeded,
                format!(
                    "the repository scan timed out after {}",
                    offload::seconds(timeout)
                ),
            )),
        }
    }

    /// Records what the scan found wrong and decides which versions to load.
    fn plan_loads(&self, plan: &RepositoryPlan, report: &mut SyncReport) -> Vec<Job> {
        let mut state = self.state();
        let state = &mut *state;
        state.loading.retain(|_, done| !done.is_done());
        for (name, problem) in &plan.problems {
            // A broken config or layout: keep whatever this model served before.
            record_failure(
                state,
                report,
                (name.clone(), None),
                problem.clone(),
                "model in repository is unusable; keeping what served before",
            );
        }
        let mut ignored = BTreeMap::new();
        for model in &plan.models {
            let known = state.ignored.get(&model.name);
            for (dir, e) in &model.ignored {
                if !known.is_some_and(|k| k.iter().any(|(d, _)| d == dir)) {
                    tracing::warn!(model = %model.name, directory = %dir, error = %e,
                        "directory in the model's directory is not a version; ignored");
                }
            }
            if !model.ignored.is_empty() {
                let entries = model.ignored.iter();
                let entries = entries.map(|(d, e)| (d.clone(), e.message.clone()));
                ignored.insert(model.name.clone(), entries.collect());
            }
        }
        state.ignored = ignored;

        let now = Instant::now();
        let mut jobs = Vec::new();
        for model in &plan.models {
            state.failed.remove(&(model.name.clone(), None));
            if state.unloaded.contains(&model.name) {
                continue;
            }
            state
                .configs
                .insert(model.name.clone(), model.config.clone());
            for (version, e) in &model.broken {
                record_failure(
                    state,
                    report,
                    (model.name.clone(), Some(*version)),
                    e.clone(),
                    "model version cannot be loaded; previous versions keep serving",
                );
            }
            for v in &model.versions {
                let key = (model.name.clone(), v.version);
                let fingerprint = (v.size, v.modified);
                if state.loading.contains_key(&key) {
                    continue; // an abandoned load of it is still running
                }
                if state
                    .loaded
                    .get(&key)
                    .is_some_and(|e| e.fingerprint == fingerprint)
                {
                    continue;
                }
                let failure = state.failed.get(&(model.name.clone(), Some(v.version)));
                let same_file = failure.is_some_and(|f| f.fingerprint == Some(fingerprint));
                let timeouts = match failure.and_then(|f| f.retry) {
                    Some((at, n)) if same_file => {
                        if now < at {
                            continue; // backing off
                        }
                        n
                    }
                    None if same_file => continue, // same broken file as last time
                    _ => 0,
                };
                inferd_core::metrics::set_model_state(&model.name, v.version, "loading");
                jobs.push(Job {
                    name: model.name.clone(),
                    version: v.version,
                    root: plan.root.clone(),
                    file: v.file.clone(),
                    config: model.config.clone(),
                    fingerprint,
                    timeouts,
                });
            }
        }
        jobs
    }

    /// Loads one version on a thread of its own, under the load timeout.
    async fn load(&self, job: &Job) -> LoadResult {
        let load = Arc::clone(&self.inner.load);
        let (name, version) = (job.name.clone(), job.version);
        let (root, file, config) = (job.root.clone(), job.file.clone(), job.config.clone());
        let started = offload::start("inferd-load", move || {
            load(&LoadRequest {
                name: &name,
                version,
                root: &root,
                file: &file,
                config: &config,
            })
        });
        let (done, pending) = match started {
            Ok(s) => s,
            Err(e) => return LoadResult::Failed(e),
        };
        let key = (job.name.clone(), job.version);
        self.state().loading.insert(key.clone(), done);
        let started = Instant::now();
        let timeout = self.inner.config.load_timeout;
        let outcome = pending.wait(timeout).await;
        if !matches!(outcome, Outcome::TimedOut) {
            self.state().loading.remove(&key);
        }
        inferd_core::metrics::ModelLoaded {
            model: &job.name,
            version: job.version,
            elapsed: started.elapsed(),
            ok: matches!(outcome, Outcome::Finished(Ok(_))),
        }
        .emit();
        match outcome {
            Outcome::Finished(Ok(model)) => LoadResult::Loaded(model),
            Outcome::Finished(Err(e)) => LoadResult::Failed(e),
            Outcome::Panicked => {
                LoadResult::Failed(Error::internal("the model loader failed unexpectedly"))
            }
            Outcome::TimedOut => LoadResult::TimedOut,
        }
    }

    /// Records the loads' results, decides what each model serves, and publishes it.
    fn apply(
        &self,
        plan: &RepositoryPlan,
        results: Vec<(Job, LoadResult)>,
        report: &mut SyncReport,
    ) {
        let mut state = self.state();
        let state = &mut *state;
        let timeout = self.inner.config.load_timeout;
        for (job, result) in results {
            let key = (job.name.clone(), job.version);
            let failed_key = (job.name.clone(), Some(job.version));
            match result {
                LoadResult::Loaded(model) => {
                    state.failed.remove(&failed_key);
                    state.loaded.insert(
                        key,
                        Entry {
                            fingerprint: job.fingerprint,
                            model: Arc::new(model),
                        },
                    );
                    tracing::info!(model = %job.name, version = job.version, "model version loaded");
                    report.loaded.push((job.name, job.version));
                }
                LoadResult::Failed(e) => {
                    tracing::warn!(model = %job.name, version = job.version, error = %e,
                        error_type = e.kind.error_type(), "model version failed to load; previous versions keep serving");
                    state.failed.insert(
                        failed_key,
                        Failure {
                            fingerprint: Some(job.fingerprint),
                            reason: e.message.clone(),
                            retry: None,
                        },
                    );
                    report.failed.push((job.name, Some(job.version), e));
                }
                LoadResult::TimedOut => {
                    let timeouts = job.timeouts + 1;
                    let delay = retry_delay(timeout, timeouts);
                    let message = format!("loading timed out after {}", offload::seconds(timeout));
                    tracing::warn!(model = %job.name, version = job.version,
                        timeout_s = timeout.as_secs_f64(), retry_in_s = delay.as_secs_f64(),
                        "model version load timed out; abandoned, previous versions keep serving; \
                         retried once its thread returns and the delay has passed");
                    state.failed.insert(
                        failed_key,
                        Failure {
                            fingerprint: Some(job.fingerprint),
                            reason: format!("{message}; will retry"),
                            retry: Some((Instant::now() + delay, timeouts)),
                        },
                    );
                    let e = Error::new(ErrorKind::DeadlineExceeded, message);
                    report.failed.push((job.name, Some(job.version), e));
                }
            }
        }

        let mut served: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (name, _) in &plan.problems {
            if let Some(before) = state.served.get(name) {
                if !state.unloaded.contains(name) {
                    served.insert(name.clone(), before.clone());
                }
            }
        }
        for model in plan
            .models
            .iter()
            .filter(|m| !state.unloaded.contains(&m.name))
        {
            let mut ready: Vec<u64> = model
                .versions
                .iter()
                .filter(|v| {
                    state
                        .loaded
                        .get(&(model.name.clone(), v.version))
                        .is_some_and(|e| e.fingerprint == (v.size, v.modified))
                })
                .map(|v| v.version)
                .collect();
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
        // Failures are kept while their model or version is still on disk.
        state.failed.retain(|(name, version), _| {
            plan.problems.iter().any(|(n, _)| n == name)
                || plan.models.iter().any(|m| {
                    &m.name == name
                        && match version {
                            None => false,
                            Some(v) => {
                                m.versions.iter().any(|p| p.version == *v)
                                    || m.broken.iter().any(|(b, _)| b == v)
                            }
                        }
                })
        });
        state.served = served;
        self.attach_shadows(state);
        self.publish(state);
    }

    /// Loads (or reloads) a model from the repository, retrying versions that failed before
    /// (a timed-out one once its abandoned load has returned).
    pub async fn load_model(&self, name: &str) -> Result<SyncReport> {
        repository::check_model_name(name)?;
        let mut scan = self.inner.syncing.lock().await;
        {
            let mut state = self.state();
            state.unloaded.remove(name);
            let now = Instant::now();
            state
                .failed
                .retain(|(n, _), f| n != name || f.retry.is_some());
            for ((_, _), f) in state.failed.iter_mut().filter(|((n, _), _)| n == name) {
                if let Some((at, _)) = &mut f.retry {
                    *at = now;
                }
            }
        }
        let report = self.sync_locked(&mut scan).await?;
        let state = self.state();
        if !state.served.contains_key(name) {
            let reason = state
                .failed
                .iter()
                .find(|((n, _), _)| n == name)
                .map(|(_, f)| f.reason.clone())
                .unwrap_or_else(|| format!("model '{name}' is not in the repository"));
            return Err(Error::new(ErrorKind::ModelNotFound, reason));
        }
        Ok(report)
    }

    /// Stops serving a model until it is loaded again.
    pub async fn unload_model(&self, name: &str) -> Result<SyncReport> {
        repository::check_model_name(name)?;
        let mut scan = self.inner.syncing.lock().await;
        {
            let mut state = self.state();
            if !state.served.contains_key(name) {
                return Err(Error::not_found(format!("model '{name}' is not loaded")));
            }
            state.unloaded.insert(name.to_owned());
        }
        self.sync_locked(&mut scan).await
    }

    /// Sets a model's traffic weights at run time (version → weight); versions must be served.
    /// Never waits for a sync: it only touches memory.
    pub fn set_traffic(&self, name: &str, weights: Vec<(u64, u32)>) -> Result<()> {
        let mut state = self.state();
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
        self.publish(&mut state);
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
            let synced = tokio::select! {
                _ = &mut stop => return,
                synced = self.sync() => synced,
            };
            match synced {
                Ok(report) if report != SyncReport::default() => {
                    tracing::debug!(?report, "repository synced")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "repository scan failed; serving what was loaded, retrying at the next poll")
                }
            }
        }
    }
}

/// Records a model's or version's problem, logging and reporting it when it is new.
fn record_failure(
    state: &mut State,
    report: &mut SyncReport,
    key: (String, Option<u64>),
    e: Error,
    what: &'static str,
) {
    if state.failed.get(&key).map(|f| &f.reason) != Some(&e.message) {
        tracing::warn!(model = %key.0, version = ?key.1, error = %e, "{what}");
        report.failed.push((key.0.clone(), key.1, e.clone()));
    }
    let failure = Failure {
        fingerprint: None,
        reason: e.message,
        retry: None,
    };
    state.failed.insert(key, failure);
}

/// Wait before the next try after `timeouts` consecutive timeouts: the timeout itself,
/// doubling, at most [`MAX_RETRY_DELAY`].
fn retry_delay(timeout: Duration, timeouts: u32) -> Duration {
    let factor = 1u32 << timeouts.saturating_sub(1).min(16);
    timeout.saturating_mul(factor).min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_a_cap() {
        let t = Duration::from_secs(30);
        assert_eq!(retry_delay(t, 1), t);
        assert_eq!(retry_delay(t, 3), t * 4);
        assert_eq!(retry_delay(t, 40), MAX_RETRY_DELAY);
    }
}
