//! What numpy means by the few constructors a pickle of an array uses (`_reconstruct` +
//! `__setstate__`, `dtype` + `__setstate__`, `scalar`, `_frombuffer`) and by `_codecs.encode`,
//! reimplemented as transformations of plain data. Every shape is checked against the limits
//! and against the bytes actually present before anything is allocated.

use crate::error::{Error, Result};
use crate::pickle::globals::{Global, Role};
use crate::pickle::value::{truncate, Array, ArrayData, Dtype, Field, Id, Kind, Value};
use crate::pickle::vm::{bad_args, Machine};

impl Machine<'_, '_> {
    /// REDUCE of one of the interpreted numpy / codecs functions: its effect on plain data,
    /// reimplemented.
    pub(super) fn call_numpy(&mut self, g: &'static Global, args: &[Id]) -> Result<Value> {
        let arg = |i: usize| args.get(i).copied().ok_or_else(|| bad_args(g));
        match g.role {
            Role::Reconstruct => {
                match self.heap.get(arg(0)?) {
                    Value::Global(c) if c.role == Role::Ndarray => {}
                    _ => return Err(bad_args(g)),
                }
                let placeholder = Dtype {
                    kind: Kind::UInt,
                    itemsize: 1,
                    big_endian: false,
                    fields: vec![],
                };
                Ok(Value::Array(Box::new(Array {
                    shape: vec![0],
                    dtype: placeholder,
                    data: ArrayData::Pending,
                })))
            }
            Role::Dtype => match self.heap.get(arg(0)?) {
                Value::Str(code) => Ok(Value::Dtype(Box::new(Dtype::from_code(code)?))),
                _ => Err(bad_args(g)),
            },
            Role::Scalar => {
                let dtype = self.dtype(arg(0)?)?;
                if dtype.kind == Kind::Object {
                    return Ok(self.heap.get(arg(1)?).clone());
                }
                let raw = match self.heap.get(arg(1)?) {
                    Value::Bytes(b) => b.as_slice(),
                    _ => return Err(bad_args(g)),
                };
                let x = crate::pickle::value::scalar_f64(&dtype, raw)?;
                Ok(match dtype.kind {
                    Kind::Float => Value::Float(x),
                    Kind::Bool => Value::Bool(x != 0.0),
                    _ => Value::Int(x as i64),
                })
            }
            Role::FromBuffer => {
                let dtype = self.dtype(arg(1)?)?;
                let shape = self.shape(arg(2)?)?;
                let fortran = matches!(self.heap.get(arg(3)?), Value::Str(s) if s == "F");
                let Value::Bytes(raw) = self.heap.get(arg(0)?) else {
                    return Err(bad_args(g));
                };
                let raw = raw.clone();
                Ok(Value::Array(Box::new(
                    self.array_from_raw(shape, dtype, raw, fortran)?,
                )))
            }
            Role::CodecsEncode => {
                let Value::Str(text) = self.heap.get(arg(0)?) else {
                    return Err(bad_args(g));
                };
                let bytes: Option<Vec<u8>> =
                    text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                bytes.map(Value::Bytes).ok_or_else(|| bad_args(g))
            }
            Role::Inert | Role::Ndarray | Role::ArrayWrapper => Err(bad_args(g)),
        }
    }

    pub(crate) fn dtype(&self, id: Id) -> Result<Dtype> {
        match self.heap.get(id) {
            Value::Dtype(d) => Ok((**d).clone()),
            other => Err(Error::Malformed(format!(
                "expected a numpy dtype, got {}",
                other.type_name()
            ))),
        }
    }

    pub(crate) fn shape(&self, id: Id) -> Result<Vec<usize>> {
        let items = match self.heap.get(id) {
            Value::Tuple(items) | Value::List(items) => items,
            Value::Int(n) => return Ok(vec![usize::try_from(*n).map_err(|_| bad_shape())?]),
            _ => return Err(bad_shape()),
        };
        if items.len() > 32 {
            return Err(bad_shape());
        }
        items
            .iter()
            .map(|&i| match self.heap.get(i) {
                Value::Int(n) => usize::try_from(*n).map_err(|_| bad_shape()),
                _ => Err(bad_shape()),
            })
            .collect()
    }

    /// Bytes an array of `shape` × `dtype` needs, refused if it overflows or passes the limit.
    pub(crate) fn array_bytes(&self, shape: &[usize], dtype: &Dtype) -> Result<usize> {
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let bytes = count.and_then(|c| c.checked_mul(dtype.itemsize));
        match bytes {
            Some(b) if b <= self.limits.max_array_bytes => Ok(b),
            _ => Err(Error::Limit(format!(
                "an array of shape {shape:?} is larger than allowed"
            ))),
        }
    }

    pub(crate) fn array_from_raw(
        &mut self,
        shape: Vec<usize>,
        dtype: Dtype,
        raw: Vec<u8>,
        fortran: bool,
    ) -> Result<Array> {
        if dtype.kind == Kind::Object {
            return Err(Error::Malformed("object array given as raw bytes".into()));
        }
        let expected = self.array_bytes(&shape, &dtype)?;
        if raw.len() != expected {
            return Err(Error::Malformed(format!(
                "array of shape {shape:?} needs {expected} bytes but the file has {}",
                raw.len()
            )));
        }
        let raw = if fortran && shape.len() > 1 {
            self.charge(raw.len())?;
            fortran_to_c(&raw, &shape, dtype.itemsize)
        } else {
            raw
        };
        Ok(Array {
            shape,
            dtype,
            data: ArrayData::Raw(raw),
        })
    }

    /// numpy's `dtype.__setstate__`: (version, byte order, subarray, names, fields, itemsize,
    /// alignment, flags[, metadata]).
    pub(super) fn dtype_state(&self, target: Id, state: Id) -> Result<Dtype> {
        let mut dtype = self.dtype(target)?;
        let items = self.tuple_items(state, "numpy dtype state")?;
        if items.len() < 8 {
            return Err(Error::Malformed("numpy dtype state is too short".into()));
        }
        if let Value::Str(order) = self.heap.get(items[1]) {
            dtype.big_endian = order == ">";
        }
        if !matches!(self.heap.get(items[2]), Value::None) {
            return Err(Error::Malformed(
                "numpy sub-array dtypes are not supported".into(),
            ));
        }
        if let (Value::Tuple(names), Value::Dict(fields)) =
            (self.heap.get(items[3]), self.heap.get(items[4]))
        {
            for &name in names {
                let Value::Str(name) = self.heap.get(name) else {
                    return Err(Error::Malformed("numpy field name is not a string".into()));
                };
                let spec = fields
                    .iter()
                    .find(|(k, _)| matches!(self.heap.get(*k), Value::Str(s) if s == name))
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        Error::Malformed(format!("numpy field '{}' has no type", truncate(name)))
                    })?;
                let spec = self.tuple_items(spec, "numpy field")?;
                let (Some(&fd), Some(&off)) = (spec.first(), spec.get(1)) else {
                    return Err(Error::Malformed(
                        "numpy field needs a dtype and an offset".into(),
                    ));
                };
                let Value::Int(offset) = *self.heap.get(off) else {
                    return Err(Error::Malformed(
                        "numpy field offset is not an integer".into(),
                    ));
                };
                let offset = usize::try_from(offset)
                    .map_err(|_| Error::Malformed("negative field offset".into()))?;
                dtype.fields.push(Field {
                    name: name.clone(),
                    dtype: self.dtype(fd)?,
                    offset,
                });
            }
        }
        if let Value::Int(size) = *self.heap.get(items[5]) {
            if size > 0 && dtype.kind == Kind::Void {
                dtype.itemsize = usize::try_from(size).unwrap_or(usize::MAX).min(1 << 20);
            }
        }
        for field in &dtype.fields {
            if field.offset.saturating_add(field.dtype.itemsize) > dtype.itemsize {
                return Err(Error::Malformed(format!(
                    "numpy field '{}' lies outside its record",
                    field.name
                )));
            }
        }
        Ok(dtype)
    }

    /// numpy's `ndarray.__setstate__`: ([version,] shape, dtype, is_fortran, data).
    pub(super) fn array_state(&mut self, state: Id) -> Result<Array> {
        let mut items = self.tuple_items(state, "numpy array state")?;
        if items.len() == 5 {
            items.remove(0);
        }
        let [shape, dtype, fortran, data] = items[..] else {
            return Err(Error::Malformed(
                "numpy array state has the wrong length".into(),
            ));
        };
        let shape = self.shape(shape)?;
        let dtype = self.dtype(dtype)?;
        let fortran = matches!(self.heap.get(fortran), Value::Bool(true));
        match self.heap.get(data).clone() {
            Value::Bytes(raw) => self.array_from_raw(shape, dtype, raw, fortran),
            Value::Str(text) => {
                let raw: Option<Vec<u8>> =
                    text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                let raw =
                    raw.ok_or_else(|| Error::Malformed("numpy array data is not latin-1".into()))?;
                self.array_from_raw(shape, dtype, raw, fortran)
            }
            Value::List(objects) if dtype.kind == Kind::Object => {
                let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                if count != Some(objects.len()) {
                    return Err(Error::Malformed(
                        "object array length does not match its shape".into(),
                    ));
                }
                let objects = if fortran && shape.len() > 1 {
                    fortran_to_c_ids(&objects, &shape)
                } else {
                    objects
                };
                Ok(Array {
                    shape,
                    dtype,
                    data: ArrayData::Objects(objects),
                })
            }
            other => Err(Error::Malformed(format!(
                "numpy array data is {}",
                other.type_name()
            ))),
        }
    }
}

/// C-order index → Fortran-order index, for any rank.
fn fortran_index(mut c_index: usize, shape: &[usize]) -> usize {
    let mut f_index = 0;
    let mut f_stride = 1;
    let mut c_strides: Vec<usize> = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        c_strides[i] = c_strides[i + 1] * shape[i + 1];
    }
    let mut coords = vec![0; shape.len()];
    for (i, s) in c_strides.iter().enumerate() {
        coords[i] = c_index / s;
        c_index %= s;
    }
    for (i, &c) in coords.iter().enumerate() {
        f_index += c * f_stride;
        f_stride *= shape[i];
    }
    f_index
}

pub(crate) fn fortran_to_c(raw: &[u8], shape: &[usize], itemsize: usize) -> Vec<u8> {
    let count: usize = shape.iter().product();
    let mut out = Vec::with_capacity(raw.len());
    for i in 0..count {
        let j = fortran_index(i, shape);
        out.extend_from_slice(&raw[j * itemsize..(j + 1) * itemsize]);
    }
    out
}

fn fortran_to_c_ids(ids: &[Id], shape: &[usize]) -> Vec<Id> {
    (0..ids.len())
        .map(|i| ids[fortran_index(i, shape)])
        .collect()
}

fn bad_shape() -> Error {
    Error::Malformed("numpy shape is not a tuple of non-negative integers".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_becomes_c_order() {
        // 2×3 array [[1,2,3],[4,5,6]] stored column by column.
        let f = [1u8, 4, 2, 5, 3, 6];
        assert_eq!(fortran_to_c(&f, &[2, 3], 1), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(
            fortran_to_c_ids(&[1, 4, 2, 5, 3, 6], &[2, 3]),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn dtype_codes() {
        let d = Dtype::from_code("<f8").unwrap();
        assert_eq!((d.kind, d.itemsize, d.big_endian), (Kind::Float, 8, false));
        assert_eq!(Dtype::from_code("U6").unwrap().itemsize, 24);
        assert!(Dtype::from_code(">i4").unwrap().big_endian);
        for bad in ["", "f3", "c16", "O4", "i9", "x8", "f"] {
            assert!(Dtype::from_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn big_endian_values_decode() {
        let d = Dtype::from_code(">i2").unwrap();
        assert_eq!(
            crate::pickle::value::scalar_f64(&d, &[0xff, 0xfe]).unwrap(),
            -2.0
        );
        let d = Dtype::from_code("<u2").unwrap();
        assert_eq!(
            crate::pickle::value::scalar_f64(&d, &[0xff, 0xfe]).unwrap(),
            65279.0
        );
    }
}
