//! What the manager shows of its state: the registry snapshot it publishes (versions, traffic
//! splits, shadows, the model for name-less APIs) and the repository index.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use inferd_core::executor::Executor;
use inferd_core::registry::{ModelVersions, Snapshot};
use inferd_core::routing::TrafficSplit;
use inferd_core::shadow::ShadowTap;

use super::{IndexEntry, Manager, ShadowEntry, State};

impl Manager {
    /// Keeps one shadow tap per model whose config has a `[shadow]` table and whose shadow
    /// version is served; a tap whose target, share and queue size are unchanged survives the
    /// rescan (its worker and queue with it), the others are replaced or dropped.
    pub(super) fn attach_shadows(&self, state: &mut State) {
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
    pub(super) fn publish(&self, state: &mut State) {
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
        snapshot.default_model = self.default_model(state, &snapshot);
        state.default_model = snapshot.default_model.clone();
        self.inner.registry.publish(snapshot);
    }

    /// The model for APIs that name none: `--default-model`; else the one that had the role
    /// before, while it is served, so that adding a model never breaks existing clients; else
    /// the only model; else none (those APIs answer 404 and say why).
    fn default_model(&self, state: &mut State, snapshot: &Snapshot) -> Option<String> {
        if let Some(name) = &self.inner.config.default_model {
            return Some(name.clone());
        }
        let kept = state
            .default_model
            .clone()
            .filter(|d| snapshot.models.contains_key(d));
        let chosen = match kept {
            Some(d) => Some(d),
            None if snapshot.models.len() == 1 => snapshot.models.keys().next().cloned(),
            None => None,
        };
        if snapshot.models.len() < 2 {
            state.warned_several = false;
        } else if !state.warned_several {
            state.warned_several = true;
            match &chosen {
                Some(d) => tracing::warn!(default_model = %d,
                    "several models are served and --default-model is not set; the model that \
                     answered requests naming no model keeps doing so"),
                None => tracing::warn!(
                    "several models are served and --default-model is not set; requests that \
                     name no model (such as /predict) answer 404"
                ),
            }
        }
        chosen
    }

    /// The repository index (Open Inference Protocol repository extension): every model on
    /// disk or in memory, with each version's state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let state = self.state();
        let entry =
            |name: &str, version: Option<String>, state: &'static str, reason: &str| IndexEntry {
                name: name.to_owned(),
                version,
                state,
                reason: reason.to_owned(),
            };
        let mut out = Vec::new();
        for (name, version) in state.loaded.keys() {
            let serving = state.served.get(name).is_some_and(|v| v.contains(version));
            let shown = if serving { "READY" } else { "UNAVAILABLE" };
            out.push(entry(name, Some(version.to_string()), shown, ""));
        }
        // A load in progress is LOADING, unless an earlier try of it timed out (then its
        // thread is the abandoned one, and the timeout is what there is to say).
        let running = |name: &String, version: u64| {
            let key = (name.clone(), version);
            state.loading.get(&key).is_some_and(|d| !d.is_done())
                && !state.loaded.contains_key(&key)
        };
        for ((name, version), failure) in &state.failed {
            if version.is_some_and(|v| running(name, v)) && failure.retry.is_none() {
                continue;
            }
            let version = version.map(|v| v.to_string());
            out.push(entry(name, version, "UNAVAILABLE", &failure.reason));
        }
        for (name, version) in state.loading.keys() {
            let timed_out = state
                .failed
                .get(&(name.clone(), Some(*version)))
                .is_some_and(|f| f.retry.is_some());
            if running(name, *version) && !timed_out {
                out.push(entry(name, Some(version.to_string()), "LOADING", ""));
            }
        }
        for (name, dirs) in &state.ignored {
            for (dir, reason) in dirs {
                out.push(entry(name, Some(dir.clone()), "UNAVAILABLE", reason));
            }
        }
        for name in &state.unloaded {
            out.push(entry(name, None, "UNAVAILABLE", "unloaded"));
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }
}
