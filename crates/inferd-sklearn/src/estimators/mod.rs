//! From decoded values to inferd models: each scikit-learn estimator inferd supports is read
//! from its pickled attributes into a transform step or a prediction head, and
//! [`crate::model::SklearnModel`] runs them.

mod attrs;
mod gb;
mod hgb;
mod linear;
mod link;
mod preprocess;
mod tree;

pub(crate) use attrs::Labels;
use attrs::Obj;

use crate::error::{Error, Result};
use crate::pickle::value::{Heap, Id, Value};

/// A transform (a scaler) on f64 rows, as scikit-learn's `transform` computes it.
pub(crate) trait Step: Send + Sync {
    fn n_in(&self) -> usize;
    fn n_out(&self) -> usize;
    /// Transforms `x` (`n_rows × n_in`, row-major) in place.
    fn transform(&self, x: &mut [f64]);
}

/// The final estimator: class probabilities (and the chosen class per row) for classifiers,
/// values for regressors.
pub(crate) trait Head: Send + Sync {
    fn n_in(&self) -> usize;
    /// Values per row in `out`: classes for a classifier, targets for a regressor.
    fn n_out(&self) -> usize;
    /// Fills `out` (`n_rows × n_out`) and, for classifiers, `best` (the index into the class
    /// list scikit-learn's `predict` would pick) from `x` (`n_rows × n_in`).
    fn predict(&self, x: &[f64], out: &mut [f64], best: &mut [usize]);
    /// Rough nanoseconds per row.
    fn cost_per_row_ns(&self) -> u64;
}

pub(crate) enum Task {
    Classifier {
        labels: Labels,
        head: Box<dyn Head>,
    },
    Regressor {
        head: Box<dyn Head>,
    },
    /// A lone transformer (a scaler saved by itself): its output is the transformed rows.
    Transform,
}

/// A whole model: transform steps, then the task's head.
pub(crate) struct Built {
    pub n_features: usize,
    pub steps: Vec<Box<dyn Step>>,
    pub task: Task,
}

/// Reads the estimator (or Pipeline) at `root`.
pub(crate) fn build(heap: &Heap, root: Id) -> Result<Built> {
    let top = Obj::new(heap, root)?;
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    let last = if top.class == "Pipeline" {
        let items = top.items("steps")?;
        let mut estimators = Vec::new();
        for &step in items {
            let pair = match heap.get(step) {
                Value::Tuple(pair) | Value::List(pair) if pair.len() == 2 => pair[1],
                _ => {
                    return Err(Error::Malformed(
                        "Pipeline step is not a (name, estimator) pair".into(),
                    ))
                }
            };
            match heap.get(pair) {
                Value::None => {}
                Value::Str(s) if s == "passthrough" => {}
                _ => estimators.push(Obj::new(heap, pair)?),
            }
        }
        let last = estimators
            .pop()
            .ok_or_else(|| Error::Malformed("empty Pipeline".into()))?;
        for est in estimators {
            steps.push(preprocess::build(est)?.ok_or_else(|| {
                Error::Unsupported(format!(
                    "{} as a Pipeline step (supported: StandardScaler, MinMaxScaler)",
                    est.class
                ))
            })?);
        }
        last
    } else {
        top
    };
    let task = match last.class {
        "DecisionTreeClassifier"
        | "ExtraTreeClassifier"
        | "RandomForestClassifier"
        | "ExtraTreesClassifier" => tree::classifier(last)?,
        "DecisionTreeRegressor"
        | "ExtraTreeRegressor"
        | "RandomForestRegressor"
        | "ExtraTreesRegressor" => tree::regressor(last)?,
        "GradientBoostingClassifier" => gb::classifier(last)?,
        "GradientBoostingRegressor" => gb::regressor(last)?,
        "HistGradientBoostingClassifier" => hgb::classifier(last)?,
        "HistGradientBoostingRegressor" => hgb::regressor(last)?,
        "LogisticRegression" => linear::logistic(last)?,
        "LinearRegression" | "Ridge" | "Lasso" | "ElasticNet" => linear::regressor(last)?,
        _ => match preprocess::build(last)? {
            Some(step) => {
                steps.push(step);
                Task::Transform
            }
            None => {
                return Err(Error::Unsupported(format!(
                "{}.{} as a model; see docs/pickle.md for what loads and how to convert the rest",
                last.module, last.class
            )))
            }
        },
    };
    let n_features = match steps.first() {
        Some(s) => s.n_in(),
        None => match &task {
            Task::Classifier { head, .. } | Task::Regressor { head } => head.n_in(),
            Task::Transform => unreachable!("a transform task always has a step"),
        },
    };
    let mut width = n_features;
    for s in &steps {
        if s.n_in() != width {
            return Err(Error::Malformed(
                "Pipeline steps disagree on the number of features".into(),
            ));
        }
        width = s.n_out();
    }
    if let Task::Classifier { head, .. } | Task::Regressor { head } = &task {
        if head.n_in() != width {
            return Err(Error::Malformed(
                "Pipeline steps disagree on the number of features".into(),
            ));
        }
    }
    if n_features == 0 {
        return Err(Error::Malformed("model takes no features".into()));
    }
    Ok(Built {
        n_features,
        steps,
        task,
    })
}
