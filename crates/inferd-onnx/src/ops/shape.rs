//! Standard operators that move elements without arithmetic: Reshape, Flatten, Concat,
//! Gather, Shape, Slice, Squeeze/Unsqueeze, Constant, and the arg/reduce operators.

use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use crate::tensor::{f64s, i64s};
use inferd_core::{DataType, Tensor, TensorData};

/// Picks elements `idx` of any tensor into a new tensor of `shape`.
pub fn take(t: &Tensor, idx: &[usize], shape: Vec<usize>) -> OpResult<Tensor> {
    fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
        idx.iter().map(|&i| v[i].clone()).collect()
    }
    let data = match t.data() {
        TensorData::F32(v) => TensorData::F32(pick(v, idx)),
        TensorData::F64(v) => TensorData::F64(pick(v, idx)),
        TensorData::I64(v) => TensorData::I64(pick(v, idx)),
        TensorData::I32(v) => TensorData::I32(pick(v, idx)),
        TensorData::Bool(v) => TensorData::Bool(pick(v, idx)),
        TensorData::Bytes(v) => TensorData::Bytes(pick(v, idx)),
    };
    Ok(Tensor::new(shape, data)?)
}

fn with_shape(t: &Tensor, shape: Vec<usize>) -> OpResult<Tensor> {
    Ok(Tensor::new(shape, t.data().clone())?)
}

/// A possibly negative axis resolved against `rank`.
fn axis_of(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        fail!("axis {axis} out of range for rank {rank}");
    }
    Ok(a as usize)
}

struct Reshape {
    allow_zero: bool,
}

impl Op for Reshape {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, s) = (input(inputs, 0)?, input(inputs, 1)?);
        let spec = i64s(s)?;
        let total = x.data().len();
        let mut shape = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            shape.push(match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                0 if !self.allow_zero => match x.shape().get(i) {
                    Some(&d) => d,
                    None => fail!("shape {spec:?} copies a dimension the input lacks"),
                },
                d if d >= 0 => d as usize,
                _ => fail!("invalid target shape {spec:?}"),
            });
        }
        if let Some(i) = infer {
            let known: usize = shape.iter().product();
            if known == 0 || total % known != 0 {
                fail!("cannot reshape {:?} to {spec:?}", x.shape());
            }
            shape[i] = total / known;
        }
        if shape.iter().product::<usize>() != total {
            fail!("cannot reshape {:?} to {spec:?}", x.shape());
        }
        Ok(vec![with_shape(x, shape)?])
    }

    fn cost_per_row_ns(&self) -> u64 {
        1
    }
}

pub fn reshape(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["allowzero"])?;
    Ok(Box::new(Reshape {
        allow_zero: a.int_or("allowzero", 0)? != 0,
    }))
}

struct Flatten(i64);

impl Op for Flatten {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let r = x.shape().len() as i64;
        let axis = if self.0 < 0 { self.0 + r } else { self.0 };
        if axis < 0 || axis > r {
            fail!("axis {} out of range for rank {r}", self.0);
        }
        let (head, tail) = x.shape().split_at(axis as usize);
        Ok(vec![with_shape(
            x,
            vec![head.iter().product(), tail.iter().product()],
        )?])
    }
}

pub fn flatten(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["axis"])?;
    Ok(Box::new(Flatten(a.int_or("axis", 1)?)))
}

struct Concat(i64);

impl Op for Concat {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let Some(first) = parts.first() else {
            fail!("Concat needs inputs")
        };
        let rank = first.shape().len();
        let axis = axis_of(self.0, rank)?;
        let mut shape = first.shape().to_vec();
        shape[axis] = 0;
        for p in &parts {
            let s = p.shape();
            if s.len() != rank
                || s.iter()
                    .enumerate()
                    .any(|(i, &d)| i != axis && d != first.shape()[i])
            {
                fail!(
                    "cannot concatenate shapes {:?} and {:?} on axis {axis}",
                    first.shape(),
                    s
                );
            }
            shape[axis] += s[axis];
        }
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        // Mixed element types are promoted to f32 (the converters only mix f32 and ints).
        let same = parts.iter().all(|p| p.datatype() == first.datatype());
        macro_rules! gather {
            ($variant:ident, $get:expr) => {{
                let views: Vec<_> = parts.iter().map($get).collect::<OpResult<Vec<_>>>()?;
                let mut out = Vec::with_capacity(shape.iter().product());
                for o in 0..outer {
                    for (p, v) in parts.iter().zip(&views) {
                        let len = p.shape()[axis] * inner;
                        out.extend_from_slice(&v[o * len..(o + 1) * len]);
                    }
                }
                TensorData::$variant(out)
            }};
        }
        let data = match (same, first.data()) {
            (true, TensorData::I64(_)) => gather!(I64, |p: &&Tensor| i64s(p)),
            (true, TensorData::F64(_)) => gather!(F64, |p: &&Tensor| Ok(f64s(p)?.into_owned())),
            (true, TensorData::Bytes(_)) => gather!(Bytes, |p: &&Tensor| match p.data() {
                TensorData::Bytes(v) => Ok(v.clone()),
                _ => unreachable!("same type checked"),
            }),
            (true, TensorData::Bool(_)) => gather!(Bool, |p: &&Tensor| match p.data() {
                TensorData::Bool(v) => Ok(v.clone()),
                _ => unreachable!("same type checked"),
            }),
            _ => gather!(F32, |p: &&Tensor| Ok(p.to_f32()?.into_owned())),
        };
        Ok(vec![Tensor::new(shape, data)?])
    }
}

pub fn concat(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["axis"])?;
    let Some(axis) = a.int("axis")? else {
        fail!("attribute 'axis' is required")
    };
    Ok(Box::new(Concat(axis)))
}

struct Gather(i64);

impl Op for Gather {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, ind) = (input(inputs, 0)?, input(inputs, 1)?);
        let axis = axis_of(self.0, x.shape().len())?;
        let dim = x.shape()[axis];
        let indices = i64s(ind)?;
        let outer: usize = x.shape()[..axis].iter().product();
        let inner: usize = x.shape()[axis + 1..].iter().product();
        let mut resolved = Vec::with_capacity(indices.len());
        for &i in &indices {
            let j = if i < 0 { i + dim as i64 } else { i };
            if j < 0 || j >= dim as i64 {
                fail!("index {i} out of range for axis of size {dim}");
            }
            resolved.push(j as usize);
        }
        let mut idx = Vec::with_capacity(outer * resolved.len() * inner);
        for o in 0..outer {
            for &j in &resolved {
                idx.extend((0..inner).map(|k| (o * dim + j) * inner + k));
            }
        }
        let mut shape = x.shape()[..axis].to_vec();
        shape.extend_from_slice(ind.shape());
        shape.extend_from_slice(&x.shape()[axis + 1..]);
        Ok(vec![take(x, &idx, shape)?])
    }
}

pub fn gather(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["axis"])?;
    Ok(Box::new(Gather(a.int_or("axis", 0)?)))
}

struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

impl Op for ShapeOp {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let r = x.shape().len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (s, e) = (clamp(self.start), clamp(self.end.unwrap_or(r)));
        let dims: Vec<i64> = x.shape()[s..e.max(s)].iter().map(|&d| d as i64).collect();
        Ok(vec![Tensor::new(vec![dims.len()], TensorData::I64(dims))?])
    }
}

pub fn shape(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["start", "end"])?;
    Ok(Box::new(ShapeOp {
        start: a.int_or("start", 0)?,
        end: a.int("end")?,
    }))
}

struct Slice {
    /// Before opset 10, starts/ends/axes are attributes.
    attrs: Option<(Vec<i64>, Vec<i64>, Vec<i64>)>,
}

impl Op for Slice {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let rank = x.shape().len();
        let opt = |i: usize| -> OpResult<Option<Vec<i64>>> {
            inputs.get(i).copied().flatten().map(i64s).transpose()
        };
        let (starts, ends, axes, steps) = match &self.attrs {
            Some((s, e, a)) => (s.clone(), e.clone(), Some(a.clone()), None),
            None => (
                i64s(input(inputs, 1)?)?,
                i64s(input(inputs, 2)?)?,
                opt(3)?,
                opt(4)?,
            ),
        };
        let axes = match axes {
            Some(a) if !a.is_empty() => a,
            _ => (0..starts.len() as i64).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            fail!("starts, ends, axes and steps differ in length");
        }
        let shape = x.shape();
        let mut ranges: Vec<(i64, i64, i64)> = shape.iter().map(|&d| (0, d as i64, 1)).collect();
        for k in 0..starts.len() {
            let ax = axis_of(axes[k], rank)?;
            let d = shape[ax] as i64;
            let step = steps[k];
            if step == 0 {
                fail!("slice step cannot be 0");
            }
            let fix = |v: i64, lo: i64, hi: i64| (if v < 0 { v + d } else { v }).clamp(lo, hi);
            ranges[ax] = if step > 0 {
                (fix(starts[k], 0, d), fix(ends[k], 0, d), step)
            } else {
                (fix(starts[k], -1, d - 1), fix(ends[k], -1, d - 1), step)
            };
        }
        let axis_idx: Vec<Vec<usize>> = ranges
            .iter()
            .map(|&(s, e, st)| {
                let mut v = Vec::new();
                let mut i = s;
                while (st > 0 && i < e) || (st < 0 && i > e) {
                    v.push(i as usize);
                    i += st;
                }
                v
            })
            .collect();
        let out_shape: Vec<usize> = axis_idx.iter().map(|v| v.len()).collect();
        let mut strides = vec![1usize; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        let mut idx = vec![0usize];
        for (ax, picks) in axis_idx.iter().enumerate() {
            let stride = strides[ax];
            idx = idx
                .iter()
                .flat_map(|&b| picks.iter().map(move |&p| b + p * stride))
                .collect();
        }
        Ok(vec![take(x, &idx, out_shape)?])
    }
}

pub fn slice(a: &Attrs, opset: i64) -> OpResult<Box<dyn Op>> {
    if opset < 10 {
        a.only(&["starts", "ends", "axes"])?;
        return Ok(Box::new(Slice {
            attrs: Some((a.ints("starts")?, a.ints("ends")?, a.ints("axes")?)),
        }));
    }
    a.only(&[])?;
    Ok(Box::new(Slice { attrs: None }))
}

struct Squeeze {
    unsqueeze: bool,
    /// Before opset 13 the axes are an attribute.
    axes: Option<Vec<i64>>,
}

impl Op for Squeeze {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let axes = match &self.axes {
            Some(a) => a.clone(),
            None => match inputs.get(1).copied().flatten() {
                Some(t) => i64s(t)?,
                None => vec![],
            },
        };
        let shape = x.shape();
        let out = if self.unsqueeze {
            let rank = shape.len() + axes.len();
            let mut ax: Vec<usize> = axes
                .iter()
                .map(|&a| axis_of(a, rank))
                .collect::<OpResult<_>>()?;
            ax.sort_unstable();
            let mut out = shape.to_vec();
            for a in ax {
                out.insert(a, 1);
            }
            out
        } else if axes.is_empty() {
            shape.iter().copied().filter(|&d| d != 1).collect()
        } else {
            let ax: Vec<usize> = axes
                .iter()
                .map(|&a| axis_of(a, shape.len()))
                .collect::<OpResult<_>>()?;
            if ax.iter().any(|&a| shape[a] != 1) {
                fail!("cannot squeeze axes {axes:?} of shape {shape:?}");
            }
            shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !ax.contains(i))
                .map(|(_, &d)| d)
                .collect()
        };
        Ok(vec![with_shape(x, out)?])
    }
}

pub fn squeeze(a: &Attrs, op: &str, opset: i64) -> OpResult<Box<dyn Op>> {
    let axes = if opset < 13 {
        a.only(&["axes"])?;
        Some(a.ints("axes")?)
    } else {
        a.only(&[])?;
        None
    };
    Ok(Box::new(Squeeze {
        unsqueeze: op == "Unsqueeze",
        axes,
    }))
}

struct Constant(Tensor);

impl Op for Constant {
    fn run(&self, _: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        Ok(vec![self.0.clone()])
    }
}

pub fn constant(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
    ])?;
    let t = if let Some(t) = a.tensor("value")? {
        t
    } else if let Some(f) = a.float("value_float")? {
        Tensor::new(vec![], TensorData::F32(vec![f]))?
    } else if let Some(i) = a.int("value_int")? {
        Tensor::new(vec![], TensorData::I64(vec![i]))?
    } else if a.has("value_floats") {
        let v = a.floats("value_floats")?;
        Tensor::new(vec![v.len()], TensorData::F32(v))?
    } else if a.has("value_ints") {
        let v = a.ints("value_ints")?;
        Tensor::new(vec![v.len()], TensorData::I64(v))?
    } else {
        fail!("Constant has no supported value attribute");
    };
    Ok(Box::new(Constant(t)))
}

/// Shape helpers for reductions along one axis: (outer, n, inner).
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

struct ArgMax {
    axis: i64,
    keepdims: bool,
    last: bool,
    min: bool,
}

impl Op for ArgMax {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let axis = axis_of(self.axis, x.shape().len())?;
        let (outer, n, inner) = split_at_axis(x.shape(), axis);
        if n == 0 {
            fail!("cannot take ArgMax over an empty axis");
        }
        let v = f64s(x)?;
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| v[(o * n + k) * inner + i];
                let mut best = 0;
                for k in 1..n {
                    let (a, b) = (at(k), at(best));
                    let better = if self.min { a < b } else { a > b };
                    if better || (self.last && a == b) {
                        best = k;
                    }
                }
                out.push(best as i64);
            }
        }
        let mut shape = x.shape().to_vec();
        if self.keepdims {
            shape[axis] = 1;
        } else {
            shape.remove(axis);
        }
        Ok(vec![Tensor::new(shape, TensorData::I64(out))?])
    }
}

pub fn argmax(a: &Attrs, op: &str) -> OpResult<Box<dyn Op>> {
    a.only(&["axis", "keepdims", "select_last_index"])?;
    Ok(Box::new(ArgMax {
        axis: a.int_or("axis", 0)?,
        keepdims: a.int_or("keepdims", 1)? != 0,
        last: a.int_or("select_last_index", 0)? != 0,
        min: op == "ArgMin",
    }))
}

#[derive(Clone, Copy, PartialEq)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
}

struct Reduce {
    kind: Reduction,
    /// From an attribute (older opsets) or `None` to read the optional second input.
    axes: Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

impl Op for Reduce {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let rank = x.shape().len();
        let axes = match &self.axes {
            Some(a) => a.clone(),
            None => inputs
                .get(1)
                .copied()
                .flatten()
                .map(i64s)
                .transpose()?
                .unwrap_or_default(),
        };
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![x.clone()]);
        }
        let mut reduce = vec![axes.is_empty(); rank];
        for &a in &axes {
            reduce[axis_of(a, rank)?] = true;
        }
        let shape = x.shape();
        let out_full: Vec<usize> = shape
            .iter()
            .zip(&reduce)
            .map(|(&d, &r)| if r { 1 } else { d })
            .collect();
        let n_out: usize = out_full.iter().product();
        let idx = super::elementwise::broadcast_index(&out_full, shape);
        let v = f64s(x)?;
        let init = match self.kind {
            Reduction::Max => f64::NEG_INFINITY,
            Reduction::Min => f64::INFINITY,
            _ => 0.0,
        };
        let mut acc = vec![init; n_out];
        let mut count = vec![0usize; n_out];
        for (k, &o) in idx.iter().enumerate() {
            let x = v[k];
            acc[o] = match self.kind {
                Reduction::Sum | Reduction::Mean => acc[o] + x,
                Reduction::Max => acc[o].max(x),
                Reduction::Min => acc[o].min(x),
                Reduction::LogSumExp => acc[o] + x.exp(),
            };
            count[o] += 1;
        }
        for (a, c) in acc.iter_mut().zip(&count) {
            match self.kind {
                Reduction::Mean => *a /= (*c).max(1) as f64,
                Reduction::LogSumExp => *a = a.ln(),
                _ => {}
            }
        }
        let out_shape = if self.keepdims {
            out_full
        } else {
            shape
                .iter()
                .zip(&reduce)
                .filter(|(_, &r)| !r)
                .map(|(&d, _)| d)
                .collect()
        };
        let data = match x.datatype() {
            DataType::F64 => TensorData::F64(acc),
            DataType::I64 => TensorData::I64(acc.into_iter().map(|v| v as i64).collect()),
            _ => TensorData::F32(acc.into_iter().map(|v| v as f32).collect()),
        };
        Ok(vec![Tensor::new(out_shape, data)?])
    }
}

pub fn reduce(a: &Attrs, op: &str, opset: i64) -> OpResult<Box<dyn Op>> {
    let kind = match op {
        "ReduceSum" => Reduction::Sum,
        "ReduceMean" => Reduction::Mean,
        "ReduceMax" => Reduction::Max,
        "ReduceMin" => Reduction::Min,
        _ => Reduction::LogSumExp,
    };
    // ReduceSum takes its axes as an input from opset 13, the others from opset 18.
    let axes_as_input = opset >= if kind == Reduction::Sum { 13 } else { 18 };
    if axes_as_input {
        a.only(&["keepdims", "noop_with_empty_axes"])?;
    } else {
        a.only(&["axes", "keepdims"])?;
    }
    Ok(Box::new(Reduce {
        kind,
        axes: if axes_as_input {
            None
        } else {
            Some(a.ints("axes")?)
        },
        keepdims: a.int_or("keepdims", 1)? != 0,
        noop_with_empty_axes: a.int_or("noop_with_empty_axes", 0)? != 0,
    }))
}
