//! MatMul and Gemm, accumulated in f64: the weights come from models trained in f64, and
//! accumulating in f32 would add error that parity with the training library does not need.

use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::tensor::f64s;
use inferd_core::{DataType, Tensor, TensorData};

/// `[m, k] × [k, n]` with optional transposes, row-major.
fn gemm_f64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        for p in 0..k {
            let av = if ta { a[p * m + i] } else { a[i * k + p] };
            if av == 0.0 {
                continue;
            }
            if tb {
                for (j, o) in row.iter_mut().enumerate() {
                    *o += av * b[j * k + p];
                }
            } else {
                let brow = &b[p * n..(p + 1) * n];
                for (o, &bv) in row.iter_mut().zip(brow) {
                    *o += av * bv;
                }
            }
        }
    }
    out
}

fn like(x: &Tensor, shape: Vec<usize>, v: Vec<f64>) -> OpResult<Tensor> {
    let data = match x.datatype() {
        DataType::F64 => TensorData::F64(v),
        DataType::I64 => TensorData::I64(v.into_iter().map(|x| x as i64).collect()),
        _ => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
    };
    Ok(Tensor::new(shape, data)?)
}

struct MatMul;

impl Op for MatMul {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        // 1-D operands are promoted (row vector on the left, column on the right) and the
        // promoted axis dropped from the result, as numpy does. Batched (rank > 2) products
        // are not needed by the converters we target and are refused.
        let (m, k, squeeze_m) = match a.shape() {
            [k] => (1, *k, true),
            [m, k] => (*m, *k, false),
            s => fail!("left operand of rank {} is not supported", s.len()),
        };
        let (k2, n, squeeze_n) = match b.shape() {
            [k] => (*k, 1, true),
            [k, n] => (*k, *n, false),
            s => fail!("right operand of rank {} is not supported", s.len()),
        };
        if k != k2 {
            fail!("shapes {:?} and {:?} do not multiply", a.shape(), b.shape());
        }
        let out = gemm_f64(&f64s(a)?, &f64s(b)?, m, k, n, false, false);
        let mut shape = Vec::new();
        if !squeeze_m {
            shape.push(m);
        }
        if !squeeze_n {
            shape.push(n);
        }
        Ok(vec![like(a, shape, out)?])
    }
}

pub fn matmul(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[])?;
    Ok(Box::new(MatMul))
}

struct Gemm {
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
}

impl Op for Gemm {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let (&[a0, a1], &[b0, b1]) = (a.shape(), b.shape()) else {
            fail!(
                "Gemm needs 2-D operands, got {:?} and {:?}",
                a.shape(),
                b.shape()
            );
        };
        let (m, k) = if self.trans_a { (a1, a0) } else { (a0, a1) };
        let (k2, n) = if self.trans_b { (b1, b0) } else { (b0, b1) };
        if k != k2 {
            fail!("shapes {:?} and {:?} do not multiply", a.shape(), b.shape());
        }
        let mut out = gemm_f64(&f64s(a)?, &f64s(b)?, m, k, n, self.trans_a, self.trans_b);
        out.iter_mut().for_each(|v| *v *= self.alpha);
        if let Some(c) = inputs.get(2).copied().flatten() {
            let idx = super::elementwise::broadcast_index(c.shape(), &[m, n]);
            if super::elementwise::broadcast_shape(c.shape(), &[m, n])? != [m, n] {
                fail!(
                    "C of shape {:?} does not broadcast to [{m}, {n}]",
                    c.shape()
                );
            }
            let cv = f64s(c)?;
            for (o, i) in out.iter_mut().zip(idx) {
                *o += self.beta * cv[i];
            }
        }
        Ok(vec![like(a, vec![m, n], out)?])
    }

    fn cost_per_row_ns(&self) -> u64 {
        100
    }
}

pub fn gemm(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["alpha", "beta", "transA", "transB"])?;
    Ok(Box::new(Gemm {
        alpha: a.float_or("alpha", 1.0)? as f64,
        beta: a.float_or("beta", 1.0)? as f64,
        trans_a: a.int_or("transA", 0)? != 0,
        trans_b: a.int_or("transB", 0)? != 0,
    }))
}
