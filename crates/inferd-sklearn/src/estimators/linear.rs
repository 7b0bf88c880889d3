//! LogisticRegression, LinearRegression, Ridge, Lasso and ElasticNet: `x · coef_ᵀ +
//! intercept_` in f64, then the logistic link for classifiers.

use super::attrs::{Labels, Obj};
use super::link::Link;
use super::{Head, Task};
use crate::error::{Error, Result};

struct LinearHead {
    n_features: usize,
    /// `n_raw × n_features`, row-major.
    coef: Vec<f64>,
    intercept: Vec<f64>,
    link: Link,
}

impl LinearHead {
    fn read(est: Obj<'_>, link: Link) -> Result<Self> {
        let n_features = est.n_features_in()?;
        let coef = est.f64s("coef_")?;
        if n_features == 0 || coef.is_empty() || coef.len() % n_features != 0 {
            return Err(Error::Malformed(format!(
                "{}.coef_ does not match its features",
                est.class
            )));
        }
        let n_raw = coef.len() / n_features;
        let mut intercept = est.f64s("intercept_")?;
        // fit_intercept=False stores a plain 0.0 for every target.
        if intercept.len() == 1 && n_raw > 1 {
            intercept = vec![intercept[0]; n_raw];
        }
        if intercept.len() != n_raw {
            return Err(Error::Malformed(format!(
                "{}.intercept_ does not match coef_",
                est.class
            )));
        }
        Ok(Self {
            n_features,
            coef,
            intercept,
            link,
        })
    }
}

impl Head for LinearHead {
    fn n_in(&self) -> usize {
        self.n_features
    }

    fn n_out(&self) -> usize {
        self.link.n_out(self.intercept.len())
    }

    fn predict(&self, x: &[f64], out: &mut [f64], best: &mut [usize]) {
        let f = self.n_features;
        let n_out = self.n_out();
        let mut raw = vec![0.0; self.intercept.len()];
        for (r, b) in best.iter_mut().enumerate() {
            let row = &x[r * f..(r + 1) * f];
            for (k, slot) in raw.iter_mut().enumerate() {
                let w = &self.coef[k * f..(k + 1) * f];
                *slot = row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + self.intercept[k];
            }
            *b = self.link.apply(&raw, &mut out[r * n_out..(r + 1) * n_out]);
        }
    }

    fn cost_per_row_ns(&self) -> u64 {
        (self.coef.len() as u64 / 2).max(20)
    }
}

pub(crate) fn logistic(est: Obj<'_>) -> Result<Task> {
    let labels = Labels::read(est.heap, est.get("classes_")?)?;
    let rows = est.f64s("coef_")?.len() / est.n_features_in()?.max(1);
    // Releases that still had `multi_class` chose one-vs-rest for 'ovr', or for 'auto' (and
    // its 1.5-1.7 spelling 'deprecated') with liblinear; releases without it always use
    // softmax beyond two classes.
    let ovr = match est.opt("multi_class").map(|id| est.heap.get(id)) {
        Some(crate::pickle::value::Value::Str(m)) => match m.as_str() {
            "ovr" => true,
            "multinomial" => false,
            _ => est.str_or("solver", "lbfgs") == "liblinear",
        },
        _ => false,
    };
    let link = match rows {
        1 if labels.len() == 2 => Link::Binary { scale: 1.0 },
        n if n == labels.len() && n > 2 => {
            if ovr {
                Link::OneVsRest
            } else {
                Link::Softmax
            }
        }
        _ => {
            return Err(Error::Malformed(
                "LogisticRegression coef_ does not match its classes".into(),
            ))
        }
    };
    Ok(Task::Classifier {
        labels,
        head: Box::new(LinearHead::read(est, link)?),
    })
}

pub(crate) fn regressor(est: Obj<'_>) -> Result<Task> {
    Ok(Task::Regressor {
        head: Box::new(LinearHead::read(est, Link::Identity)?),
    })
}
