//! ONNX-ML feature transforms: Scaler, Normalizer, Imputer, Binarizer, FeatureVectorizer and
//! ArrayFeatureExtractor. Scaling is computed in f64 and rounded once, which matches
//! scikit-learn (f64 arithmetic, then float32 for the trees) better than f32 arithmetic.

use super::shape::take;
use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::tensor::{as_matrix, f32_tensor, f64s, i64s};
use inferd_core::{Tensor, TensorData};

/// A per-column parameter: one value for all columns, or one per column.
fn per_column(v: &[f64], c: usize, what: &str) -> OpResult<()> {
    if v.len() > 1 && v.len() != c {
        fail!("{} {what} values for {c} columns", v.len());
    }
    Ok(())
}

fn at(v: &[f64], j: usize, default: f64) -> f64 {
    match v.len() {
        0 => default,
        1 => v[0],
        _ => v[j],
    }
}

struct Scaler {
    offset: Vec<f64>,
    scale: Vec<f64>,
}

impl Op for Scaler {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (_, c) = as_matrix(x);
        per_column(&self.offset, c, "offset")?;
        per_column(&self.scale, c, "scale")?;
        let v = f64s(x)?;
        let out = v
            .iter()
            .enumerate()
            .map(|(k, &x)| {
                let j = k % c.max(1);
                ((x - at(&self.offset, j, 0.0)) * at(&self.scale, j, 1.0)) as f32
            })
            .collect();
        Ok(vec![f32_tensor(x.shape().to_vec(), out)?])
    }
}

pub fn scaler(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["offset", "scale"])?;
    let f =
        |n: &str| -> OpResult<Vec<f64>> { Ok(a.floats(n)?.into_iter().map(f64::from).collect()) };
    Ok(Box::new(Scaler {
        offset: f("offset")?,
        scale: f("scale")?,
    }))
}

#[derive(Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

struct Normalizer(Norm);

impl Op for Normalizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (_, c) = as_matrix(x);
        let v = f64s(x)?;
        let mut out = Vec::with_capacity(v.len());
        for row in v.chunks(c.max(1)) {
            let norm = match self.0 {
                Norm::Max => row.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Norm::L1 => row.iter().map(|x| x.abs()).sum(),
                Norm::L2 => row.iter().map(|x| x * x).sum::<f64>().sqrt(),
            };
            // A zero norm leaves the row unchanged rather than producing NaNs.
            out.extend(row.iter().map(|&x| {
                if norm == 0.0 {
                    x as f32
                } else {
                    (x / norm) as f32
                }
            }));
        }
        Ok(vec![f32_tensor(x.shape().to_vec(), out)?])
    }
}

pub fn normalizer(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["norm"])?;
    let norm = match a.string_or("norm", "MAX")?.as_str() {
        "MAX" => Norm::Max,
        "L1" => Norm::L1,
        "L2" => Norm::L2,
        other => fail!("unsupported norm '{other}'"),
    };
    Ok(Box::new(Normalizer(norm)))
}

enum Imputer {
    Float { values: Vec<f64>, replaced: f32 },
    Int { values: Vec<i64>, replaced: i64 },
}

impl Op for Imputer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (_, c) = as_matrix(x);
        let shape = x.shape().to_vec();
        match self {
            Imputer::Float { values, replaced } => {
                per_column(values, c, "imputed")?;
                let v = x.to_f32()?;
                let out = v
                    .iter()
                    .enumerate()
                    .map(|(k, &x)| {
                        let hit = if replaced.is_nan() {
                            x.is_nan()
                        } else {
                            x == *replaced
                        };
                        if hit {
                            at(values, k % c.max(1), 0.0) as f32
                        } else {
                            x
                        }
                    })
                    .collect();
                Ok(vec![f32_tensor(shape, out)?])
            }
            Imputer::Int { values, replaced } => {
                if values.len() > 1 && values.len() != c {
                    fail!("{} imputed values for {c} columns", values.len());
                }
                let v = i64s(x)?;
                let out = v
                    .iter()
                    .enumerate()
                    .map(|(k, &x)| {
                        if x == *replaced {
                            values[if values.len() == 1 { 0 } else { k % c }]
                        } else {
                            x
                        }
                    })
                    .collect();
                Ok(vec![Tensor::new(shape, TensorData::I64(out))?])
            }
        }
    }
}

pub fn imputer(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[
        "imputed_value_floats",
        "imputed_value_int64s",
        "replaced_value_float",
        "replaced_value_int64",
    ])?;
    let ints = a.ints("imputed_value_int64s")?;
    let floats = a.floats("imputed_value_floats")?;
    Ok(Box::new(match (floats.is_empty(), ints.is_empty()) {
        (false, true) => Imputer::Float {
            values: floats.into_iter().map(f64::from).collect(),
            replaced: a.float_or("replaced_value_float", 0.0)?,
        },
        (true, false) => Imputer::Int {
            values: ints,
            replaced: a.int_or("replaced_value_int64", 0)?,
        },
        _ => fail!("exactly one of imputed_value_floats and imputed_value_int64s must be set"),
    }))
}

struct Binarizer(f64);

impl Op for Binarizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let v = f64s(x)?;
        let out = v
            .iter()
            .map(|&x| if x > self.0 { 1.0 } else { 0.0 })
            .collect();
        Ok(vec![f32_tensor(x.shape().to_vec(), out)?])
    }
}

pub fn binarizer(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["threshold"])?;
    Ok(Box::new(Binarizer(a.float_or("threshold", 0.0)? as f64)))
}

struct FeatureVectorizer(Vec<usize>);

impl Op for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        if inputs.len() != self.0.len() {
            fail!(
                "{} inputs for {} input dimensions",
                inputs.len(),
                self.0.len()
            );
        }
        let parts: Vec<&Tensor> = (0..inputs.len())
            .map(|i| input(inputs, i))
            .collect::<OpResult<_>>()?;
        let n = parts.first().map(|p| as_matrix(p).0).unwrap_or(0);
        let width: usize = self.0.iter().sum();
        let mut out = vec![0.0f32; n * width];
        let mut col = 0;
        for (p, &dim) in parts.iter().zip(&self.0) {
            let (pn, pc) = as_matrix(p);
            if pn != n {
                fail!("inputs have different row counts ({pn} and {n})");
            }
            let v = p.to_f32()?;
            // Each input contributes exactly `dim` columns: truncated or zero-padded.
            for r in 0..n {
                for j in 0..dim.min(pc) {
                    out[r * width + col + j] = v[r * pc + j];
                }
            }
            col += dim;
        }
        Ok(vec![f32_tensor(vec![n, width], out)?])
    }
}

pub fn feature_vectorizer(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["inputdimensions"])?;
    let dims = a.ints("inputdimensions")?;
    // Bounded so that a hostile file cannot make every request allocate without limit.
    if dims.iter().any(|&d| !(0..=1 << 20).contains(&d)) || dims.iter().sum::<i64>() > 1 << 20 {
        fail!("input dimensions {dims:?} out of range");
    }
    Ok(Box::new(FeatureVectorizer(
        dims.into_iter().map(|d| d as usize).collect(),
    )))
}

struct ArrayFeatureExtractor;

impl Op for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, ind) = (input(inputs, 0)?, input(inputs, 1)?);
        let indices = i64s(ind)?;
        let shape = x.shape();
        let last = shape.last().copied().unwrap_or(1);
        for &i in &indices {
            if i < 0 || i as usize >= last {
                fail!("index {i} out of range for {last} columns");
            }
        }
        // Selects along the last axis; a 1-D input gives one row (onnxruntime's shape).
        let outer: usize = if shape.len() <= 1 {
            1
        } else {
            shape[..shape.len() - 1].iter().product()
        };
        let mut idx = Vec::with_capacity(outer * indices.len());
        for o in 0..outer {
            idx.extend(indices.iter().map(|&i| o * last + i as usize));
        }
        let mut out_shape = if shape.len() <= 1 {
            vec![1]
        } else {
            shape[..shape.len() - 1].to_vec()
        };
        out_shape.push(indices.len());
        Ok(vec![take(x, &idx, out_shape)?])
    }
}

pub fn array_feature_extractor(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[])?;
    Ok(Box::new(ArrayFeatureExtractor))
}
