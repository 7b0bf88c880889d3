//! Element-wise standard operators: broadcasting arithmetic and comparisons, activations,
//! Softmax, Cast and Identity.

use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::tensor::{datatype_of, f64s};
use inferd_core::{DataType, Tensor, TensorData};

/// numpy-style broadcast shape of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => fail!("shapes {a:?} and {b:?} cannot be broadcast together"),
        };
    }
    Ok(out)
}

/// For each element of `out_shape`, the index into a tensor of shape `shape` broadcast to it.
pub fn broadcast_index(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let n = out_shape.len();
    let total: usize = out_shape.iter().product();
    // Strides of `shape` aligned to the right of `out_shape`, zero on broadcast axes.
    let mut strides = vec![0usize; n];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = i + n - shape.len();
        strides[o] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    if shape == out_shape {
        return (0..total).collect();
    }
    let mut idx = Vec::with_capacity(total);
    let mut counter = vec![0usize; n];
    for _ in 0..total {
        idx.push(counter.iter().zip(&strides).map(|(c, s)| c * s).sum());
        for ax in (0..n).rev() {
            counter[ax] += 1;
            if counter[ax] < out_shape[ax] {
                break;
            }
            counter[ax] = 0;
        }
    }
    idx
}

#[derive(Clone, Copy)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Equal,
    Less,
    Greater,
    LessEq,
    GreaterEq,
}

struct Binary {
    op: Bin,
    /// `Sum`/`Max`/`Min` take any number of inputs; the rest exactly two.
    variadic: bool,
}

fn apply_f64(op: Bin, x: f64, y: f64) -> f64 {
    match op {
        Bin::Add => x + y,
        Bin::Sub => x - y,
        Bin::Mul => x * y,
        Bin::Div => x / y,
        Bin::Pow => x.powf(y),
        Bin::Max => x.max(y),
        Bin::Min => x.min(y),
        _ => unreachable!("comparisons are handled apart"),
    }
}

fn compare(op: Bin, x: f64, y: f64) -> bool {
    match op {
        Bin::Equal => x == y,
        Bin::Less => x < y,
        Bin::Greater => x > y,
        Bin::LessEq => x <= y,
        Bin::GreaterEq => x >= y,
        _ => unreachable!("arithmetic is handled apart"),
    }
}

fn binary_pair(op: Bin, a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let ia = broadcast_index(a.shape(), &shape);
    let ib = broadcast_index(b.shape(), &shape);
    if matches!(
        op,
        Bin::Equal | Bin::Less | Bin::Greater | Bin::LessEq | Bin::GreaterEq
    ) {
        let (x, y) = (f64s(a)?, f64s(b)?);
        let v = ia
            .iter()
            .zip(&ib)
            .map(|(&i, &j)| compare(op, x[i], y[j]))
            .collect();
        return Ok(Tensor::new(shape, TensorData::Bool(v))?);
    }
    let data = match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => TensorData::F32(
            ia.iter()
                .zip(&ib)
                .map(|(&i, &j)| apply_f64(op, x[i] as f64, y[j] as f64) as f32)
                .collect(),
        ),
        (TensorData::I64(x), TensorData::I64(y)) => {
            let mut v = Vec::with_capacity(ia.len());
            for (&i, &j) in ia.iter().zip(&ib) {
                let (p, q) = (x[i], y[j]);
                v.push(match op {
                    Bin::Add => p.wrapping_add(q),
                    Bin::Sub => p.wrapping_sub(q),
                    Bin::Mul => p.wrapping_mul(q),
                    Bin::Div if q == 0 => fail!("integer division by zero"),
                    Bin::Div => p.wrapping_div(q),
                    Bin::Max => p.max(q),
                    Bin::Min => p.min(q),
                    _ => (p as f64).powf(q as f64) as i64,
                });
            }
            TensorData::I64(v)
        }
        (x, y) if x.datatype() == y.datatype() || matches!(x, TensorData::F64(_)) => {
            let (x, y) = (f64s(a)?, f64s(b)?);
            TensorData::F64(
                ia.iter()
                    .zip(&ib)
                    .map(|(&i, &j)| apply_f64(op, x[i], y[j]))
                    .collect(),
            )
        }
        (x, y) => fail!(
            "operands of types {} and {} differ",
            x.datatype().as_str(),
            y.datatype().as_str()
        ),
    };
    Ok(Tensor::new(shape, data)?)
}

impl Op for Binary {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let first = input(inputs, 0)?;
        if !self.variadic && inputs.len() != 2 {
            fail!("expected 2 inputs, got {}", inputs.len());
        }
        let mut acc = first.clone();
        for i in 1..inputs.len() {
            acc = binary_pair(self.op, &acc, input(inputs, i)?)?;
        }
        Ok(vec![acc])
    }
}

struct Where;

impl Op for Where {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (c, x, y) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let TensorData::Bool(cond) = c.data() else {
            fail!("condition must be bool")
        };
        let shape = broadcast_shape(&broadcast_shape(c.shape(), x.shape())?, y.shape())?;
        let (ic, ix, iy) = (
            broadcast_index(c.shape(), &shape),
            broadcast_index(x.shape(), &shape),
            broadcast_index(y.shape(), &shape),
        );
        let pick = |k: usize| cond[ic[k]];
        let data = match (x.data(), y.data()) {
            (TensorData::F32(a), TensorData::F32(b)) => TensorData::F32(
                (0..shape.iter().product())
                    .map(|k| if pick(k) { a[ix[k]] } else { b[iy[k]] })
                    .collect(),
            ),
            (TensorData::I64(a), TensorData::I64(b)) => TensorData::I64(
                (0..shape.iter().product())
                    .map(|k| if pick(k) { a[ix[k]] } else { b[iy[k]] })
                    .collect(),
            ),
            _ => {
                let (a, b) = (f64s(x)?, f64s(y)?);
                TensorData::F64(
                    (0..shape.iter().product())
                        .map(|k| if pick(k) { a[ix[k]] } else { b[iy[k]] })
                        .collect(),
                )
            }
        };
        Ok(vec![Tensor::new(shape, data)?])
    }
}

pub fn binary(a: &Attrs, op: &str) -> OpResult<Box<dyn Op>> {
    // `broadcast`/`axis` are opset-1..6 legacy broadcasting, which we do not emulate.
    a.only(&[])?;
    let (op, variadic) = match op {
        "Add" => (Bin::Add, false),
        "Sub" => (Bin::Sub, false),
        "Mul" => (Bin::Mul, false),
        "Div" => (Bin::Div, false),
        "Pow" => (Bin::Pow, false),
        "Max" => (Bin::Max, true),
        "Min" => (Bin::Min, true),
        "Sum" => (Bin::Add, true),
        "Equal" => (Bin::Equal, false),
        "Less" => (Bin::Less, false),
        "Greater" => (Bin::Greater, false),
        "LessOrEqual" => (Bin::LessEq, false),
        "GreaterOrEqual" => (Bin::GreaterEq, false),
        "Where" => return Ok(Box::new(Where)),
        other => fail!("unsupported operator {other}"),
    };
    Ok(Box::new(Binary { op, variadic }))
}

#[derive(Clone, Copy)]
enum Un {
    Sigmoid,
    Relu,
    Tanh,
    Exp,
    Log,
    Abs,
    Neg,
    Sqrt,
    Reciprocal,
    Erf,
    Floor,
    Ceil,
    LeakyRelu(f64),
    Clip,
}

struct Unary(Un);

fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse for parity; use the complementary series via
    // libm-quality rational approximation (W. J. Cody), max error ~1e-16 relative.
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = 1.0
        - t * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

fn unary_f64(op: Un, x: f64) -> f64 {
    match op {
        Un::Sigmoid => {
            let v = 1.0 / (1.0 + (-x.abs()).exp());
            if x < 0.0 {
                1.0 - v
            } else {
                v
            }
        }
        Un::Relu => x.max(0.0),
        Un::Tanh => x.tanh(),
        Un::Exp => x.exp(),
        Un::Log => x.ln(),
        Un::Abs => x.abs(),
        Un::Neg => -x,
        Un::Sqrt => x.sqrt(),
        Un::Reciprocal => 1.0 / x,
        Un::Erf => erf(x),
        Un::Floor => x.floor(),
        Un::Ceil => x.ceil(),
        Un::LeakyRelu(alpha) => {
            if x < 0.0 {
                alpha * x
            } else {
                x
            }
        }
        Un::Clip => x,
    }
}

impl Op for Unary {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let op = self.0;
        let (lo, hi) = if let Un::Clip = op {
            let bound = |i: usize, d: f64| -> OpResult<f64> {
                Ok(match inputs.get(i).copied().flatten() {
                    Some(t) => f64s(t)?.first().copied().unwrap_or(d),
                    None => d,
                })
            };
            (bound(1, f64::NEG_INFINITY)?, bound(2, f64::INFINITY)?)
        } else {
            (f64::NEG_INFINITY, f64::INFINITY)
        };
        let f = |v: f64| unary_f64(op, v).clamp(lo, hi);
        let data = match x.data() {
            TensorData::F32(v) => TensorData::F32(v.iter().map(|&v| f(v as f64) as f32).collect()),
            TensorData::F64(v) => TensorData::F64(v.iter().map(|&v| f(v)).collect()),
            TensorData::I64(v) => TensorData::I64(v.iter().map(|&v| f(v as f64) as i64).collect()),
            other => fail!("unsupported element type {}", other.datatype().as_str()),
        };
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

struct Not;
impl Op for Not {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let TensorData::Bool(v) = x.data() else {
            fail!("Not needs a bool tensor")
        };
        Ok(vec![Tensor::new(
            x.shape().to_vec(),
            TensorData::Bool(v.iter().map(|b| !b).collect()),
        )?])
    }
}

struct IsNan;
impl Op for IsNan {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let v = f64s(x)?.iter().map(|v| v.is_nan()).collect();
        Ok(vec![Tensor::new(x.shape().to_vec(), TensorData::Bool(v))?])
    }
}

pub fn unary(a: &Attrs, op: &str, opset: i64) -> OpResult<Box<dyn Op>> {
    let un = match op {
        "Sigmoid" => Un::Sigmoid,
        "Relu" => Un::Relu,
        "Tanh" => Un::Tanh,
        "Exp" => Un::Exp,
        "Log" => Un::Log,
        "Abs" => Un::Abs,
        "Neg" => Un::Neg,
        "Sqrt" => Un::Sqrt,
        "Reciprocal" => Un::Reciprocal,
        "Erf" => Un::Erf,
        "Floor" => Un::Floor,
        "Ceil" => Un::Ceil,
        "Not" => {
            a.only(&[])?;
            return Ok(Box::new(Not));
        }
        "IsNaN" => {
            a.only(&[])?;
            return Ok(Box::new(IsNan));
        }
        "LeakyRelu" => {
            a.only(&["alpha"])?;
            return Ok(Box::new(Unary(Un::LeakyRelu(
                a.float_or("alpha", 0.01)? as f64
            ))));
        }
        "Clip" => {
            if opset < 11 {
                fail!("Clip before opset 11 (bounds as attributes) is not supported");
            }
            a.only(&[])?;
            return Ok(Box::new(Unary(Un::Clip)));
        }
        other => fail!("unsupported operator {other}"),
    };
    a.only(&[])?;
    Ok(Box::new(Unary(un)))
}

struct Softmax {
    axis: i64,
    /// Before opset 13 the input is flattened to 2-D at `axis` and normalised per row.
    flatten: bool,
    log: bool,
}

impl Op for Softmax {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let shape = x.shape();
        let rank = shape.len() as i64;
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        if axis < 0 || axis >= rank.max(1) {
            fail!("axis {} out of range for rank {rank}", self.axis);
        }
        let axis = axis as usize;
        // Reduce over `n` contiguous-by-stride elements: outer × n × inner.
        let (outer, n, inner) = if self.flatten {
            (
                shape[..axis].iter().product(),
                shape[axis..].iter().product(),
                1,
            )
        } else {
            (
                shape[..axis].iter().product(),
                shape.get(axis).copied().unwrap_or(1),
                shape[axis + 1..].iter().product::<usize>(),
            )
        };
        let v = f64s(x)?;
        let mut out = vec![0.0f64; v.len()];
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| o * n * inner + k * inner + i;
                let max = (0..n).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..n).map(|k| (v[at(k)] - max).exp()).sum();
                for k in 0..n {
                    out[at(k)] = if self.log {
                        v[at(k)] - max - sum.ln()
                    } else {
                        (v[at(k)] - max).exp() / sum
                    };
                }
            }
        }
        let data = match x.datatype() {
            DataType::F64 => TensorData::F64(out),
            _ => TensorData::F32(out.into_iter().map(|v| v as f32).collect()),
        };
        Ok(vec![Tensor::new(shape.to_vec(), data)?])
    }
}

pub fn softmax(a: &Attrs, op: &str, opset: i64) -> OpResult<Box<dyn Op>> {
    a.only(&["axis"])?;
    let flatten = opset < 13;
    let axis = a.int_or("axis", if flatten { 1 } else { -1 })?;
    Ok(Box::new(Softmax {
        axis,
        flatten,
        log: op == "LogSoftmax",
    }))
}

struct Cast(DataType);

impl Op for Cast {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let shape = x.shape().to_vec();
        if x.datatype() == self.0 {
            return Ok(vec![x.clone()]);
        }
        let data = match (self.0, x.data()) {
            (DataType::Bytes, _) => fail!("casting to string is not supported"),
            (to, TensorData::Bytes(v)) => {
                // Strings parse as numbers, as onnxruntime does.
                let mut parsed = Vec::with_capacity(v.len());
                for s in v {
                    let s = String::from_utf8_lossy(s);
                    match s.trim().parse::<f64>() {
                        Ok(f) => parsed.push(f),
                        Err(_) => fail!("cannot cast '{s}' to a number"),
                    }
                }
                return Ok(vec![Tensor::new(shape, numeric(to, parsed))?]);
            }
            (DataType::F32, _) => TensorData::F32(x.to_f32()?.into_owned()),
            (to, TensorData::I64(v)) if to != DataType::F64 => numeric_i(to, v.clone()),
            (to, _) => numeric(to, f64s(x)?.into_owned()),
        };
        Ok(vec![Tensor::new(shape, data)?])
    }
}

/// f64 values in the target type; float → int truncates toward zero as C casts do.
fn numeric(to: DataType, v: Vec<f64>) -> TensorData {
    match to {
        DataType::F32 => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
        DataType::F64 => TensorData::F64(v),
        DataType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
        DataType::Bool => TensorData::Bool(v.into_iter().map(|x| x != 0.0).collect()),
        _ => TensorData::I64(v.into_iter().map(|x| x as i64).collect()),
    }
}

/// i64 values in the target type without a detour through f64 (exact for large ints).
fn numeric_i(to: DataType, v: Vec<i64>) -> TensorData {
    match to {
        DataType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
        DataType::Bool => TensorData::Bool(v.into_iter().map(|x| x != 0).collect()),
        DataType::F32 => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
        _ => TensorData::I64(v),
    }
}

pub fn cast(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["to", "saturate", "round_mode"])?;
    let Some(to) = a.int("to")? else {
        fail!("attribute 'to' is required")
    };
    let Some(dt) = datatype_of(to as i32) else {
        fail!("unsupported target type {to}")
    };
    Ok(Box::new(Cast(dt)))
}

/// Identity, or Dropout in inference mode (which also returns an all-true mask).
struct Identity {
    mask: bool,
}

impl Op for Identity {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let mut out = vec![x.clone()];
        if self.mask {
            let all = TensorData::Bool(vec![true; x.data().len()]);
            out.push(Tensor::new(x.shape().to_vec(), all)?);
        }
        Ok(out)
    }
}

pub fn identity(a: &Attrs, op: &str) -> OpResult<Box<dyn Op>> {
    if op == "Dropout" {
        a.only(&["seed", "ratio", "is_test"])?;
    } else {
        a.only(&[])?;
    }
    Ok(Box::new(Identity {
        mask: op == "Dropout",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shape(&[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert!(broadcast_shape(&[3], &[4]).is_err());
        assert_eq!(broadcast_index(&[1, 2], &[2, 2]), vec![0, 1, 0, 1]);
        assert_eq!(broadcast_index(&[2, 1], &[2, 2]), vec![0, 0, 1, 1]);
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-7);
    }
}
