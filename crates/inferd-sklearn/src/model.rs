//! The loaded model inferd serves: input `input` FP32 `[-1, n_features]`; classifiers answer
//! `label` (INT64, or BYTES for text classes) and `probabilities` FP32 `[-1, n_classes]`,
//! regressors `variable` FP64 `[-1]` (`[-1, n_targets]` for several targets), a lone scaler
//! `transformed` FP64 `[-1, n_features]`.

use inferd_core::{DataType, Model, ModelMetadata, NamedTensor, Tensor, TensorData, TensorSpec};

use crate::estimators::{Built, Labels, Task};

pub const INPUT: &str = "input";

pub struct SklearnModel {
    built: Built,
    metadata: ModelMetadata,
}

impl SklearnModel {
    pub(crate) fn new(built: Built) -> Self {
        let f = built.n_features as i64;
        let inputs = vec![TensorSpec::new(INPUT, DataType::F32, vec![-1, f])];
        let (outputs, probabilities_output) = match &built.task {
            Task::Classifier { labels, head } => {
                let datatype = match labels {
                    Labels::Ints(_) => DataType::I64,
                    Labels::Strings(_) => DataType::Bytes,
                };
                let k = head.n_out() as i64;
                (
                    vec![
                        TensorSpec::new("label", datatype, vec![-1]),
                        TensorSpec::new("probabilities", DataType::F32, vec![-1, k]),
                    ],
                    Some(1),
                )
            }
            Task::Regressor { head } => {
                let shape = match head.n_out() {
                    1 => vec![-1],
                    t => vec![-1, t as i64],
                };
                (
                    vec![TensorSpec::new("variable", DataType::F64, shape)],
                    None,
                )
            }
            Task::Transform => {
                let n = built.steps.last().map_or(0, |s| s.n_out()) as i64;
                (
                    vec![TensorSpec::new("transformed", DataType::F64, vec![-1, n])],
                    None,
                )
            }
        };
        let metadata = ModelMetadata {
            platform: "sklearn".into(),
            inputs,
            outputs,
            prediction_output: 0,
            probabilities_output,
        };
        Self { built, metadata }
    }
}

impl Model for SklearnModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, inputs: Vec<NamedTensor>) -> inferd_core::Result<Vec<NamedTensor>> {
        use inferd_core::Error;
        let input = match inputs.len() {
            1 => &inputs[0],
            _ => inputs
                .iter()
                .find(|t| t.name == INPUT)
                .ok_or_else(|| Error::bad_request(format!("expected one input named '{INPUT}'")))?,
        };
        let f = self.built.n_features;
        let n_rows = match input.tensor.shape() {
            [n, cols] if *cols == f => *n,
            [cols] if *cols == f => 1,
            shape => {
                return Err(Error::bad_request(format!(
                    "input '{INPUT}' must have shape [n, {f}], got {shape:?}"
                )))
            }
        };
        let mut x = input.tensor.to_f64()?.into_owned();
        for step in &self.built.steps {
            step.transform(&mut x);
        }
        let outputs = match &self.built.task {
            Task::Classifier { labels, head } => {
                let k = head.n_out();
                let mut out = vec![0.0; n_rows * k];
                let mut best = vec![0; n_rows];
                head.predict(&x, &mut out, &mut best);
                let label = match labels {
                    Labels::Ints(v) => TensorData::I64(best.iter().map(|&b| v[b]).collect()),
                    Labels::Strings(v) => {
                        TensorData::Bytes(best.iter().map(|&b| v[b].as_bytes().to_vec()).collect())
                    }
                };
                let probs = TensorData::F32(out.iter().map(|&p| p as f32).collect());
                vec![
                    NamedTensor::new("label", Tensor::new(vec![n_rows], label)?),
                    NamedTensor::new("probabilities", Tensor::new(vec![n_rows, k], probs)?),
                ]
            }
            Task::Regressor { head } => {
                let t = head.n_out();
                let mut out = vec![0.0; n_rows * t];
                head.predict(&x, &mut out, &mut vec![0; n_rows]);
                let shape = if t == 1 {
                    vec![n_rows]
                } else {
                    vec![n_rows, t]
                };
                vec![NamedTensor::new(
                    "variable",
                    Tensor::new(shape, TensorData::F64(out))?,
                )]
            }
            Task::Transform => {
                let n = self.built.steps.last().map_or(0, |s| s.n_out());
                vec![NamedTensor::new(
                    "transformed",
                    Tensor::new(vec![n_rows, n], TensorData::F64(x))?,
                )]
            }
        };
        Ok(outputs)
    }

    fn cost_per_row_ns(&self) -> u64 {
        match &self.built.task {
            Task::Classifier { head, .. } | Task::Regressor { head } => head.cost_per_row_ns(),
            Task::Transform => 20,
        }
    }
}
