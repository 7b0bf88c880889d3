//! The served form of a native model: a compiled ensemble producing margins, and the task
//! that turns margins into what the training library's scikit-learn interface returns
//! (`label` + `probabilities` for classifiers, `variable` for regressors).

use inferd_core::tensor::{DataType, NamedTensor, Tensor, TensorData};
use inferd_core::{Error, Model, ModelMetadata, Result, TensorSpec};
use inferd_trees::{Ensemble, EnsembleSpec};

use crate::NativeError;

/// The one input every native model takes.
pub const INPUT: &str = "input";
/// Class index per row (classifiers).
pub const LABEL: &str = "label";
/// Class probabilities per row (classifiers; two columns for binary models).
pub const PROBABILITIES: &str = "probabilities";
/// Predicted value per row (regressors).
pub const VARIABLE: &str = "variable";

/// Most classes a model may declare: the count sizes allocations made before any tree is
/// read, so a corrupt header must not be able to ask for gigabytes.
pub(crate) const MAX_CLASSES: usize = 1 << 16;

pub(crate) fn check_classes(n: usize) -> Result<(), NativeError> {
    if n > MAX_CLASSES {
        return Err(NativeError::Unsupported(format!(
            "{n} classes (at most {MAX_CLASSES} are supported)"
        )));
    }
    Ok(())
}

/// How a regressor's margin becomes its prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Link {
    Identity,
    /// `exp(m)`: Poisson, Gamma and Tweedie objectives.
    Exp,
    /// `1 / (1 + exp(-scale * m))`: logistic regression and cross-entropy objectives.
    Sigmoid(f64),
    /// `sign(m) * m²`: LightGBM's `regression sqrt`, trained on the square root of the label.
    SignedSquare,
}

/// What the margins mean: the part of the objective that survives training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Task {
    Regression(Link),
    /// One margin `m`; `p = 1 / (1 + exp(-scale * m))`, probabilities `[1 - p, p]`.
    Binary {
        scale: f64,
    },
    /// One margin per class, normalised by softmax.
    Softmax {
        n_classes: usize,
    },
    /// One margin per class, each through its own sigmoid, not normalised (LightGBM's
    /// `multiclassova`, whose `predict_proba` returns them as they are).
    OneVsAll {
        n_classes: usize,
        scale: f64,
    },
}

impl Task {
    fn n_classes(self) -> Option<usize> {
        match self {
            Task::Regression(_) => None,
            Task::Binary { .. } => Some(2),
            Task::Softmax { n_classes } | Task::OneVsAll { n_classes, .. } => Some(n_classes),
        }
    }
}

/// What a loader hands over: trees, task, and a divisor for averaged (random forest) models.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub spec: EnsembleSpec,
    pub task: Task,
    /// Margins are divided by this before the link (LightGBM `average_output`); 1 otherwise.
    pub divide_by: f64,
    pub platform: &'static str,
}

/// A loaded XGBoost or LightGBM model, ready to serve.
#[derive(Debug)]
pub struct NativeModel {
    ensemble: Ensemble,
    task: Task,
    divide_by: f64,
    metadata: ModelMetadata,
}

impl NativeModel {
    pub(crate) fn new(parsed: Parsed) -> Result<Self, NativeError> {
        let Parsed {
            spec,
            task,
            divide_by,
            platform,
        } = parsed;
        let want_targets = match task {
            Task::Regression(_) | Task::Binary { .. } => 1,
            Task::Softmax { n_classes } | Task::OneVsAll { n_classes, .. } => n_classes,
        };
        if spec.n_targets != want_targets {
            return Err(NativeError::Invalid(format!(
                "{} outputs per row for a task that needs {want_targets}",
                spec.n_targets
            )));
        }
        let n_features = i64::try_from(spec.n_features)
            .map_err(|_| NativeError::Invalid("too many features".into()))?;
        let ensemble = Ensemble::compile(&spec)?;
        let inputs = vec![TensorSpec::new(INPUT, DataType::F32, vec![-1, n_features])];
        let (outputs, probabilities_output) = match task.n_classes() {
            Some(k) => (
                vec![
                    TensorSpec::new(LABEL, DataType::I64, vec![-1]),
                    TensorSpec::new(PROBABILITIES, DataType::F32, vec![-1, k as i64]),
                ],
                Some(1),
            ),
            None => (
                vec![TensorSpec::new(VARIABLE, DataType::F32, vec![-1])],
                None,
            ),
        };
        let metadata = ModelMetadata {
            platform: platform.to_string(),
            inputs,
            outputs,
            prediction_output: 0,
            probabilities_output,
        };
        Ok(Self {
            ensemble,
            task,
            divide_by,
            metadata,
        })
    }

    /// Caps the threads one inference may use (default: the machine's parallelism).
    pub fn set_max_threads(&mut self, threads: usize) {
        self.ensemble.set_max_threads(threads);
    }

    pub fn n_features(&self) -> usize {
        self.ensemble.n_features()
    }

    pub fn n_trees(&self) -> usize {
        self.ensemble.n_trees()
    }

    /// Bytes held by the compiled trees.
    pub fn memory_bytes(&self) -> usize {
        self.ensemble.memory_bytes()
    }

    /// Runs the trees and the task on row-major f32 rows; returns the outputs in declaration
    /// order. The shape of `rows` has been checked by the caller.
    fn run(&self, rows: &[f32], n_rows: usize) -> Result<Vec<NamedTensor>> {
        let n_targets = self.ensemble.n_targets();
        let mut margins = vec![0.0; n_rows * n_targets];
        self.ensemble.predict(rows, &mut margins);
        if self.divide_by != 1.0 {
            margins.iter_mut().for_each(|m| *m /= self.divide_by);
        }
        match self.task {
            Task::Regression(link) => {
                let values = margins
                    .iter()
                    .map(|&m| apply_link(link, m) as f32)
                    .collect();
                let values = Tensor::new(vec![n_rows], TensorData::F32(values))?;
                Ok(vec![NamedTensor::new(VARIABLE, values)])
            }
            task => {
                let k = task.n_classes().unwrap_or(1);
                let mut probabilities = vec![0.0f64; n_rows * k];
                for (m, p) in margins.chunks(n_targets).zip(probabilities.chunks_mut(k)) {
                    class_probabilities(task, m, p);
                }
                // Labels come from the f64 probabilities, as both libraries take them from
                // their own (f32 for XGBoost, f64 for LightGBM) before any narrowing.
                let labels = probabilities.chunks(k).map(|p| argmax(p) as i64).collect();
                let probabilities = probabilities.iter().map(|&p| p as f32).collect();
                Ok(vec![
                    NamedTensor::new(LABEL, Tensor::new(vec![n_rows], TensorData::I64(labels))?),
                    NamedTensor::new(
                        PROBABILITIES,
                        Tensor::new(vec![n_rows, k], TensorData::F32(probabilities))?,
                    ),
                ])
            }
        }
    }
}

fn sigmoid(scale: f64, m: f64) -> f64 {
    1.0 / (1.0 + (-scale * m).exp())
}

fn apply_link(link: Link, m: f64) -> f64 {
    match link {
        Link::Identity => m,
        Link::Exp => m.exp(),
        Link::Sigmoid(scale) => sigmoid(scale, m),
        Link::SignedSquare => m.signum() * m * m,
    }
}

fn class_probabilities(task: Task, margins: &[f64], out: &mut [f64]) {
    match task {
        Task::Regression(_) => {}
        Task::Binary { scale } => {
            let p = sigmoid(scale, margins[0]);
            out[0] = 1.0 - p;
            out[1] = p;
        }
        Task::Softmax { .. } => {
            let max = margins.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for (o, &m) in out.iter_mut().zip(margins) {
                *o = (m - max).exp();
                sum += *o;
            }
            out.iter_mut().for_each(|o| *o /= sum);
        }
        Task::OneVsAll { scale, .. } => {
            for (o, &m) in out.iter_mut().zip(margins) {
                *o = sigmoid(scale, m);
            }
        }
    }
}

/// Index of the first largest value (ties go to the lower class, as `numpy.argmax` does);
/// NaN never wins.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

impl Model for NativeModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>> {
        let [input] = <[NamedTensor; 1]>::try_from(inputs).map_err(|v| {
            Error::bad_request(format!(
                "expected one input tensor '{INPUT}', got {}",
                v.len()
            ))
        })?;
        if input.name != INPUT {
            return Err(Error::bad_request(format!(
                "unknown input '{}': this model's input is '{INPUT}'",
                input.name
            )));
        }
        let n_features = self.ensemble.n_features();
        let shape = input.tensor.shape();
        let n_rows = match *shape {
            [n, f] if f == n_features => n,
            _ => {
                return Err(Error::bad_request(format!(
                    "input '{INPUT}' must have shape [rows, {n_features}], got {shape:?}"
                )))
            }
        };
        let rows = input.tensor.to_f32()?;
        self.run(&rows, n_rows)
    }

    fn cost_per_row_ns(&self) -> u64 {
        // About a nanosecond per compiled step, plus the fixed cost of the outputs.
        self.ensemble.steps_per_row().saturating_add(100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_the_first_of_equals_and_ignores_nan() {
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[0.2, 0.5, 0.3]), 1);
        assert_eq!(argmax(&[f64::NAN, 0.1]), 1);
        assert_eq!(argmax(&[f64::NAN, f64::NAN]), 0);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut p = [0.0; 3];
        class_probabilities(
            Task::Softmax { n_classes: 3 },
            &[1000.0, 0.0, -1000.0],
            &mut p,
        );
        assert_eq!(p, [1.0, 0.0, 0.0]);
        class_probabilities(Task::Softmax { n_classes: 3 }, &[1.0, 2.0, 3.0], &mut p);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}
