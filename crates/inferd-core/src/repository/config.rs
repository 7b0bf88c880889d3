//! The per-model configuration file, `DIR/<model>/config.toml`. Every field is optional; an
//! absent file means the defaults (serve the newest version, no labels, no batching).
//!
//! ```toml
//! version_policy = { latest = 2 }        # or "all", or { specific = [1, 3] }
//! default_version = 1                    # what a request that names no version gets
//!
//! [labels]                               # TF Serving style: /v1/models/iris/labels/stable
//! stable = 1
//! canary = 2
//!
//! [batching]                             # dynamic batching (off when the table is absent)
//! max_batch_size = 64
//! max_queue_delay_ms = 2
//! max_queue_size = 1024
//!
//! [traffic]                              # split of requests that name no version
//! weights = { "1" = 90, "2" = 10 }
//! sticky_header = "x-user-id"
//!
//! [shadow]                               # copy a share of requests to a version, answers unused
//! version = 2
//! share = 0.1
//!
//! [[inputs]]                             # optional renames / documentation of the model's tensors
//! name = "float_input"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Largest config file read (they are a few lines; anything bigger is a mistake or an attack).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub version_policy: VersionPolicy,
    pub default_version: Option<u64>,
    #[serde(default)]
    pub labels: BTreeMap<String, u64>,
    pub batching: Option<BatchingConfig>,
    pub traffic: Option<TrafficConfig>,
    pub shadow: Option<ShadowConfig>,
    /// Free-form strings shown in model metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Which versions on disk are served, as Triton's version policies.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    Latest(usize),
    All,
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

impl VersionPolicy {
    /// The versions to serve out of those present, ascending.
    pub fn select(&self, present: &[u64]) -> Vec<u64> {
        let mut v = present.to_vec();
        v.sort_unstable();
        v.dedup();
        match self {
            VersionPolicy::All => v,
            VersionPolicy::Latest(n) => v.split_off(v.len().saturating_sub(*n)),
            VersionPolicy::Specific(wanted) => {
                v.into_iter().filter(|x| wanted.contains(x)).collect()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingConfig {
    pub max_batch_size: usize,
    #[serde(default = "default_queue_delay_ms")]
    pub max_queue_delay_ms: f64,
    #[serde(default = "default_queue_size")]
    pub max_queue_size: usize,
}

fn default_queue_delay_ms() -> f64 {
    1.0
}

fn default_queue_size() -> usize {
    1024
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// Version → relative weight. TOML keys are strings, so versions are parsed on validation.
    pub weights: BTreeMap<String, u32>,
    pub sticky_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    pub version: u64,
    pub share: f64,
    #[serde(default = "default_shadow_queue")]
    pub max_queue_size: usize,
}

fn default_shadow_queue() -> usize {
    256
}

impl ModelConfig {
    /// Parses and checks a config file's text. Messages name the field, not the file's path.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(Error::model_load("config.toml is larger than 64 KiB"));
        }
        let config: ModelConfig = toml::from_str(text)
            .map_err(|e| Error::model_load(format!("config.toml: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::model_load(format!("config.toml: {m}")));
        match &self.version_policy {
            VersionPolicy::Latest(0) => {
                return bad("version_policy latest must be at least 1".into())
            }
            VersionPolicy::Specific(v) if v.is_empty() => {
                return bad("version_policy specific needs at least one version".into())
            }
            _ => {}
        }
        for (label, &version) in &self.labels {
            if label.is_empty()
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(format!("label {label:?} must be letters, digits, - or _"));
            }
            if version == 0 {
                return bad(format!(
                    "label {label:?} points at version 0; versions start at 1"
                ));
            }
        }
        if let Some(b) = &self.batching {
            if b.max_batch_size == 0 || b.max_queue_size == 0 {
                return bad("batching sizes must be at least 1".into());
            }
            if !(b.max_queue_delay_ms.is_finite()
                && (0.0..=10_000.0).contains(&b.max_queue_delay_ms))
            {
                return bad("batching.max_queue_delay_ms must be between 0 and 10000".into());
            }
        }
        if let Some(t) = &self.traffic {
            if t.weights.is_empty() || t.weights.values().all(|&w| w == 0) {
                return bad("traffic.weights needs at least one positive weight".into());
            }
            for key in t.weights.keys() {
                if key.parse::<u64>().map_or(true, |v| v == 0) {
                    return bad(format!(
                        "traffic.weights key {key:?} is not a version number"
                    ));
                }
            }
        }
        if let Some(s) = &self.shadow {
            if !(s.share.is_finite() && (0.0..=1.0).contains(&s.share)) {
                return bad("shadow.share must be between 0 and 1".into());
            }
        }
        Ok(())
    }

    /// Traffic weights as (version, weight), for versions that are actually served.
    pub fn traffic_weights(&self) -> Vec<(u64, u32)> {
        self.traffic
            .iter()
            .flat_map(|t| t.weights.iter())
            .filter_map(|(k, &w)| Some((k.parse().ok()?, w)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_latest_one() {
        let c = ModelConfig::parse("").unwrap();
        assert_eq!(c.version_policy, VersionPolicy::Latest(1));
        assert_eq!(c.version_policy.select(&[3, 1, 2]), vec![3]);
    }

    #[test]
    fn full_config_parses() {
        let c = ModelConfig::parse(
            r#"
            version_policy = { latest = 2 }
            [labels]
            stable = 1
            canary = 2
            [batching]
            max_batch_size = 32
            max_queue_delay_ms = 0.5
            [traffic]
            weights = { "1" = 90, "2" = 10 }
            sticky_header = "x-user"
            [shadow]
            version = 2
            share = 0.25
            "#,
        )
        .unwrap();
        assert_eq!(c.version_policy.select(&[1, 2, 3]), vec![2, 3]);
        assert_eq!(c.labels["canary"], 2);
        assert_eq!(c.batching.as_ref().unwrap().max_queue_size, 1024);
        assert_eq!(c.traffic_weights(), vec![(1, 90), (2, 10)]);
    }

    #[test]
    fn policies_select() {
        assert_eq!(VersionPolicy::All.select(&[2, 1]), vec![1, 2]);
        assert_eq!(
            VersionPolicy::Specific(vec![1, 5]).select(&[1, 2, 3]),
            vec![1]
        );
        assert_eq!(VersionPolicy::Latest(5).select(&[1, 2]), vec![1, 2]);
    }

    #[test]
    fn bad_configs_are_refused_with_the_field_named() {
        for (text, needle) in [
            ("version_policy = { latest = 0 }", "latest"),
            ("unknown = 1", "unknown"),
            ("[labels]\n\"a b\" = 1", "label"),
            ("[batching]\nmax_batch_size = 0", "batching"),
            ("[traffic]\nweights = { \"x\" = 1 }", "traffic"),
            ("[shadow]\nversion = 1\nshare = 2.0", "shadow"),
        ] {
            let err = ModelConfig::parse(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
    }
}
