//! MatMul and Gemm, accumulated in f64: the weights come from models trained in f64, and
//! accumulating in f32 would add error that parity with the training library does not need.
//! A constant right operand (a layer's weights, as every converter emits) is packed once at
//! load for [`packed::multiply`]; a computed one takes the plain loop below.

use super::packed::{self, Packed};
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

/// Packs a constant 2-D right operand (`[k, n]`, or `[n, k]` when `transposed`).
fn pack(b: Option<&Tensor>, transposed: bool) -> OpResult<Option<Packed>> {
    let Some(b) = b else { return Ok(None) };
    let &[rows, cols] = b.shape() else {
        return Ok(None);
    };
    if matches!(b.datatype(), DataType::Bytes | DataType::Bool) {
        return Ok(None);
    }
    let (k, n) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    Ok(Some(Packed::new(&f64s(b)?, k, n, transposed)))
}

/// Packs input 1 into `slot` when it is a constant; it is then released (not read by `run`).
fn prepare_weights(
    slot: &mut Option<Packed>,
    constants: &[Option<&Tensor>],
    transposed: bool,
) -> OpResult<Vec<usize>> {
    *slot = pack(constants.get(1).copied().flatten(), transposed)?;
    Ok(slot.iter().map(|_| 1).collect())
}

/// Nanoseconds per row of a product with `weights` multiply-adds per row: about 0.1 ns each
/// for a lone row on one core (a 1024 × 1024 layer takes about 100 µs), rounded up so that
/// wide layers leave the I/O threads.
fn packed_cost(b: &Packed) -> u64 {
    (b.k() as u64 * b.n() as u64) / 8 + 50
}

/// MatMul; `weights` is its right operand when that is a 2-D constant.
struct MatMul {
    weights: Option<Packed>,
}

impl Op for MatMul {
    fn prepare(&mut self, constants: &[Option<&Tensor>]) -> OpResult<Vec<usize>> {
        prepare_weights(&mut self.weights, constants, false)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let a = input(inputs, 0)?;
        // 1-D operands are promoted (row vector on the left, column on the right) and the
        // promoted axis dropped from the result, as numpy does. Batched (rank > 2) products
        // are not needed by the converters we target and are refused.
        let (m, k, squeeze_m) = match a.shape() {
            [k] => (1, *k, true),
            [m, k] => (*m, *k, false),
            s => fail!("left operand of rank {} is not supported", s.len()),
        };
        let (n, squeeze_n, out) = match &self.weights {
            Some(w) => {
                if k != w.k() {
                    fail!(
                        "left operand of shape {:?} does not multiply [{}, {}]",
                        a.shape(),
                        w.k(),
                        w.n()
                    );
                }
                (w.n(), false, packed::multiply(w, &f64s(a)?, m))
            }
            None => {
                let b = input(inputs, 1)?;
                let (k2, n, squeeze_n) = match b.shape() {
                    [k] => (*k, 1, true),
                    [k, n] => (*k, *n, false),
                    s => fail!("right operand of rank {} is not supported", s.len()),
                };
                if k != k2 {
                    fail!("shapes {:?} and {:?} do not multiply", a.shape(), b.shape());
                }
                let out = gemm_f64(&f64s(a)?, &f64s(b)?, m, k, n, false, false);
                (n, squeeze_n, out)
            }
        };
        let mut shape = Vec::new();
        if !squeeze_m {
            shape.push(m);
        }
        if !squeeze_n {
            shape.push(n);
        }
        Ok(vec![like(a, shape, out)?])
    }

    fn cost_per_row_ns(&self) -> u64 {
        self.weights.as_ref().map_or(20, packed_cost)
    }

    fn memory_bytes(&self) -> usize {
        self.weights.as_ref().map_or(0, Packed::memory_bytes)
    }
}

pub fn matmul(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[])?;
    Ok(Box::new(MatMul { weights: None }))
}

struct Gemm {
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
    /// B, packed, when it is a 2-D constant.
    weights: Option<Packed>,
}

impl Gemm {
    /// `op(A) · op(B)` with its shape `[m, n]`.
    fn product(&self, inputs: &[Option<&Tensor>]) -> OpResult<(usize, usize, Vec<f64>)> {
        let a = input(inputs, 0)?;
        let &[a0, a1] = a.shape() else {
            fail!("Gemm needs a 2-D A, got {:?}", a.shape());
        };
        let (m, k) = if self.trans_a { (a1, a0) } else { (a0, a1) };
        if let Some(w) = &self.weights {
            if k != w.k() {
                fail!(
                    "A of shape {:?} does not multiply [{}, {}]",
                    a.shape(),
                    w.k(),
                    w.n()
                );
            }
            let av = f64s(a)?;
            let rows = if self.trans_a {
                transposed(&av, a0, a1)
            } else {
                av.into_owned()
            };
            return Ok((m, w.n(), packed::multiply(w, &rows, m)));
        }
        let b = input(inputs, 1)?;
        let &[b0, b1] = b.shape() else {
            fail!("Gemm needs a 2-D B, got {:?}", b.shape());
        };
        let (k2, n) = if self.trans_b { (b1, b0) } else { (b0, b1) };
        if k != k2 {
            fail!("shapes {:?} and {:?} do not multiply", a.shape(), b.shape());
        }
        let out = gemm_f64(&f64s(a)?, &f64s(b)?, m, k, n, self.trans_a, self.trans_b);
        Ok((m, n, out))
    }
}

/// `x` (`rows × cols`, row-major) transposed.
fn transposed(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; x.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = x[i * cols + j];
        }
    }
    t
}

impl Op for Gemm {
    fn prepare(&mut self, constants: &[Option<&Tensor>]) -> OpResult<Vec<usize>> {
        prepare_weights(&mut self.weights, constants, self.trans_b)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let a = input(inputs, 0)?;
        let (m, n, mut out) = self.product(inputs)?;
        if self.alpha != 1.0 {
            out.iter_mut().for_each(|v| *v *= self.alpha);
        }
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
        self.weights.as_ref().map_or(100, packed_cost)
    }

    fn memory_bytes(&self) -> usize {
        self.weights.as_ref().map_or(0, Packed::memory_bytes)
    }
}

pub fn gemm(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["alpha", "beta", "transA", "transB"])?;
    Ok(Box::new(Gemm {
        alpha: a.float_or("alpha", 1.0)? as f64,
        beta: a.float_or("beta", 1.0)? as f64,
        trans_a: a.int_or("transA", 0)? != 0,
        trans_b: a.int_or("transB", 0)? != 0,
        weights: None,
    }))
}
