//! From raw scores to what scikit-learn's `predict` / `predict_proba` return: the inverse link
//! functions of its losses, and how each family picks the predicted class.

/// How a head's raw scores become its outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Link {
    /// Regression, identity link.
    Identity,
    /// Regression, log link (Poisson, Gamma): `exp(raw)`.
    Exp,
    /// Two classes from one score: `p = expit(scale * raw)`, probabilities `[1 - p, p]`, class
    /// 1 when the score is positive (scale is 2 for the exponential loss).
    Binary { scale: f64 },
    /// One score per class, softmax; the class with the largest score.
    Softmax,
    /// One-vs-rest logistic: `expit` per class, normalised to sum to 1.
    OneVsRest,
    /// Scores are already probabilities (forests): the first largest wins, as `argmax` does.
    Probabilities,
}

pub(crate) fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

impl Link {
    /// Outputs per row for `n_raw` raw scores per row.
    pub fn n_out(self, n_raw: usize) -> usize {
        match self {
            Link::Binary { .. } => 2,
            _ => n_raw,
        }
    }

    /// Turns one row's raw scores into its outputs, returning the chosen class index.
    pub fn apply(self, raw: &[f64], out: &mut [f64]) -> usize {
        match self {
            Link::Identity => {
                out.copy_from_slice(raw);
                0
            }
            Link::Exp => {
                for (o, r) in out.iter_mut().zip(raw) {
                    *o = r.exp();
                }
                0
            }
            Link::Binary { scale } => {
                let p = expit(scale * raw[0]);
                out[0] = 1.0 - p;
                out[1] = p;
                usize::from(raw[0] > 0.0)
            }
            Link::Softmax => {
                let max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for (o, r) in out.iter_mut().zip(raw) {
                    *o = (r - max).exp();
                    sum += *o;
                }
                for o in out.iter_mut() {
                    *o /= sum;
                }
                argmax(raw)
            }
            Link::OneVsRest => {
                let mut sum = 0.0;
                for (o, r) in out.iter_mut().zip(raw) {
                    *o = expit(*r);
                    sum += *o;
                }
                for o in out.iter_mut() {
                    *o /= sum;
                }
                argmax(raw)
            }
            Link::Probabilities => {
                out.copy_from_slice(raw);
                argmax(raw)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_softmax() {
        let mut out = [0.0; 2];
        assert_eq!(Link::Binary { scale: 1.0 }.apply(&[0.0], &mut out), 0);
        assert_eq!(out, [0.5, 0.5]);
        let mut out = [0.0; 3];
        assert_eq!(Link::Softmax.apply(&[1.0, 3.0, 2.0], &mut out), 1);
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(Link::Probabilities.apply(&[0.5, 0.5, 0.0], &mut out), 0);
    }
}
