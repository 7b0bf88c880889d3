//! GradientBoostingClassifier / GradientBoostingRegressor: `init_`'s constant raw score plus
//! `learning_rate ×` each stage's regression tree, then the loss's inverse link.
//!
//! Files from scikit-learn before 1.4 carry `sklearn.ensemble._gb_losses` objects, later ones
//! `sklearn._loss` objects; the two compute the initial score slightly differently (clip
//! epsilon, and whether multiclass log-priors are centred), so the loss's module decides.

use inferd_trees::{Aggregate, EnsembleSpec};

use super::attrs::{object_items, Labels, Obj};
use super::link::Link;
use super::tree::{EnsembleHead, TreeArrays};
use super::Task;
use crate::error::{Error, Result};
use crate::pickle::value::Value;

/// The stage trees, as a spec summing `learning_rate × leaf` per class column.
fn stages(est: Obj<'_>, n_columns: usize, base_values: Vec<f64>) -> Result<EnsembleSpec> {
    let lr = est.float("learning_rate")?;
    let grid = est.array("estimators_")?;
    let items = object_items(grid)?;
    match grid.shape[..] {
        [_, k] if k == n_columns => {}
        _ => {
            return Err(Error::Malformed(
                "GradientBoosting estimators_ has the wrong shape".into(),
            ))
        }
    }
    let mut trees = Vec::with_capacity(items.len());
    for (i, &id) in items.iter().enumerate() {
        let column = i % n_columns;
        let t = TreeArrays::read(Obj::new(est.heap, id)?)?;
        // scikit-learn adds `scale * value` per stage; the same product here keeps it exact.
        trees.push(t.spec(|v| vec![(column, lr * v[0])])?);
    }
    Ok(EnsembleSpec {
        trees,
        n_features: est.n_features_in()?,
        n_targets: n_columns,
        aggregate: Aggregate::Sum,
        base_values,
    })
}

/// Whether the file comes from scikit-learn ≥ 1.4 (`sklearn._loss`) rather than `_gb_losses`.
fn new_losses(est: Obj<'_>) -> bool {
    match est.opt("_loss").map(|id| est.heap.get(id)) {
        Some(Value::Object { class, .. }) => class.module.starts_with("sklearn._loss"),
        _ => true,
    }
}

pub(crate) fn classifier(est: Obj<'_>) -> Result<Task> {
    let labels = Labels::read(est.heap, est.get("classes_")?)?;
    let n_classes = labels.len();
    let exponential = est.str_or("loss", "log_loss") == "exponential";
    let binary = n_classes == 2;
    let n_columns = if binary { 1 } else { n_classes };
    let eps = if new_losses(est) {
        f64::EPSILON
    } else {
        f64::from(f32::EPSILON)
    };

    let base = match est.value("init_")? {
        Value::Str(s) if s == "zero" => vec![0.0; n_columns],
        _ => {
            let init = est.obj("init_")?;
            if init.class != "DummyClassifier" || init.str_or("strategy", "prior") != "prior" {
                return Err(Error::Unsupported(format!(
                    "GradientBoosting with init={} (only the default prior, or 'zero')",
                    init.class
                )));
            }
            let prior = init.f64s("class_prior_")?;
            if prior.len() != n_classes {
                return Err(Error::Malformed(
                    "init_ priors do not match the classes".into(),
                ));
            }
            let clip = |p: f64| p.clamp(eps, 1.0 - eps);
            if binary {
                let p = clip(prior[1]);
                let logit = (p / (1.0 - p)).ln();
                vec![if exponential { 0.5 * logit } else { logit }]
            } else {
                let logs: Vec<f64> = prior.iter().map(|&p| clip(p).ln()).collect();
                if new_losses(est) {
                    let mean = logs.iter().sum::<f64>() / logs.len() as f64;
                    logs.iter().map(|l| l - mean).collect()
                } else {
                    logs
                }
            }
        }
    };
    let link = match (binary, exponential) {
        (true, false) => Link::Binary { scale: 1.0 },
        (true, true) => Link::Binary { scale: 2.0 },
        (false, _) => Link::Softmax,
    };
    let spec = stages(est, n_columns, base)?;
    Ok(Task::Classifier {
        labels,
        head: Box::new(EnsembleHead::new(&spec, link)?),
    })
}

pub(crate) fn regressor(est: Obj<'_>) -> Result<Task> {
    let base = match est.value("init_")? {
        Value::Str(s) if s == "zero" => vec![0.0],
        _ => {
            let init = est.obj("init_")?;
            if init.class != "DummyRegressor" {
                return Err(Error::Unsupported(format!(
                    "GradientBoosting with init={} (only the default, or 'zero')",
                    init.class
                )));
            }
            let constant = init.f64s("constant_")?;
            if constant.len() != 1 {
                return Err(Error::Malformed(
                    "init_ constant is not a single value".into(),
                ));
            }
            constant
        }
    };
    let spec = stages(est, 1, base)?;
    Ok(Task::Regressor {
        head: Box::new(EnsembleHead::new(&spec, Link::Identity)?),
    })
}
