//! StandardScaler and MinMaxScaler, computed as scikit-learn's `transform` does.

use super::attrs::Obj;
use super::Step;
use crate::error::{Error, Result};

struct Standard {
    mean: Option<Vec<f64>>,
    scale: Option<Vec<f64>>,
    n: usize,
}

impl Step for Standard {
    fn n_in(&self) -> usize {
        self.n
    }

    fn n_out(&self) -> usize {
        self.n
    }

    fn transform(&self, x: &mut [f64]) {
        for row in x.chunks_exact_mut(self.n) {
            if let Some(mean) = &self.mean {
                row.iter_mut().zip(mean).for_each(|(v, m)| *v -= m);
            }
            if let Some(scale) = &self.scale {
                row.iter_mut().zip(scale).for_each(|(v, s)| *v /= s);
            }
        }
    }
}

struct MinMax {
    scale: Vec<f64>,
    min: Vec<f64>,
    clip: Option<(f64, f64)>,
}

impl Step for MinMax {
    fn n_in(&self) -> usize {
        self.scale.len()
    }

    fn n_out(&self) -> usize {
        self.scale.len()
    }

    fn transform(&self, x: &mut [f64]) {
        for row in x.chunks_exact_mut(self.scale.len()) {
            for ((v, s), m) in row.iter_mut().zip(&self.scale).zip(&self.min) {
                *v *= s;
                *v += m;
                if let Some((lo, hi)) = self.clip {
                    *v = v.clamp(lo, hi);
                }
            }
        }
    }
}

/// The step for a supported transformer, `None` if `est` is not one.
pub(crate) fn build(est: Obj<'_>) -> Result<Option<Box<dyn Step>>> {
    let step: Box<dyn Step> = match est.class {
        "StandardScaler" => {
            let n = est.n_features_in()?;
            let read = |key: &str| -> Result<Option<Vec<f64>>> {
                match est.opt(key) {
                    None => Ok(None),
                    Some(_) => {
                        let v = est.f64s(key)?;
                        if v.len() != n {
                            return Err(Error::Malformed(format!(
                                "StandardScaler.{key} has the wrong length"
                            )));
                        }
                        Ok(Some(v))
                    }
                }
            };
            // mean_/scale_ are None when with_mean/with_std were off.
            let mean = if est.bool_or("with_mean", true) {
                read("mean_")?
            } else {
                None
            };
            let scale = if est.bool_or("with_std", true) {
                read("scale_")?
            } else {
                None
            };
            Box::new(Standard { mean, scale, n })
        }
        "MinMaxScaler" => {
            let n = est.n_features_in()?;
            let scale = est.f64s("scale_")?;
            let min = est.f64s("min_")?;
            if scale.len() != n || min.len() != n {
                return Err(Error::Malformed(
                    "MinMaxScaler attributes have the wrong length".into(),
                ));
            }
            let clip = if est.bool_or("clip", false) {
                let range = est.items("feature_range")?;
                let bound = |i: usize| match range.get(i).map(|&id| est.heap.get(id)) {
                    Some(crate::pickle::value::Value::Float(x)) => Ok(*x),
                    Some(crate::pickle::value::Value::Int(x)) => Ok(*x as f64),
                    _ => Err(Error::Malformed(
                        "MinMaxScaler.feature_range is not two numbers".into(),
                    )),
                };
                let (lo, hi) = (bound(0)?, bound(1)?);
                // f64::clamp panics on a reversed or NaN range; scikit-learn refuses those too.
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    return Err(Error::Malformed(
                        "MinMaxScaler.feature_range is reversed".into(),
                    ));
                }
                Some((lo, hi))
            } else {
                None
            };
            Box::new(MinMax { scale, min, clip })
        }
        _ => return Ok(None),
    };
    Ok(Some(step))
}
