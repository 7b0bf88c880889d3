//! ONNX-ML operators that map categories: OneHotEncoder, LabelEncoder, CategoryMapper, and
//! ZipMap.
//!
//! ZipMap turns probabilities into a sequence of `{label: probability}` maps, a type inferd's
//! tensors cannot carry. inferd returns the probabilities unchanged as an `[N, classes]` f32
//! tensor, columns in the order of the ZipMap's `classlabels_*` attribute (the classifier's
//! class order); clients wanting maps zip them with those labels.

use std::collections::HashMap;

use super::{input, Op};
use crate::attrs::Attrs;
use crate::error::{fail, OpResult};
use inferd_core::{Tensor, TensorData};

struct ZipMap;

impl Op for ZipMap {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        Ok(vec![Tensor::new(
            x.shape().to_vec(),
            TensorData::F32(x.to_f32()?.into_owned()),
        )?])
    }
}

pub fn zipmap(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["classlabels_int64s", "classlabels_strings"])?;
    Ok(Box::new(ZipMap))
}

/// A category key: integers, strings, or floats compared by bit pattern (after folding -0
/// into 0, so the two zeros are one category).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Str(Vec<u8>),
    Float(u64),
}

fn float_key(f: f64) -> Key {
    Key::Float(if f == 0.0 { 0 } else { f.to_bits() })
}

/// The elements of `t` as keys of the kind the operator's keys are.
fn keys_of(t: &Tensor, strings: bool, floats: bool) -> OpResult<Vec<Key>> {
    Ok(match (t.data(), strings) {
        (TensorData::Bytes(v), true) => v.iter().cloned().map(Key::Str).collect(),
        (TensorData::Bytes(_), false) => fail!("expected numbers, got strings"),
        (_, true) => fail!("expected strings, got {}", t.datatype().as_str()),
        (TensorData::F32(_) | TensorData::F64(_), false) if floats => {
            t.to_f64()?.iter().map(|&f| float_key(f)).collect()
        }
        (TensorData::F32(_) | TensorData::F64(_), false) => {
            // Float inputs to integer categories are truncated, as onnxruntime does.
            t.to_f64()?.iter().map(|&f| Key::Int(f as i64)).collect()
        }
        (_, false) if floats => t.to_f64()?.iter().map(|&f| float_key(f)).collect(),
        (_, false) => crate::tensor::i64s(t)?.into_iter().map(Key::Int).collect(),
    })
}

struct OneHotEncoder {
    cats: HashMap<Key, usize>,
    n: usize,
    strings: bool,
    /// When false, an unknown category is an error instead of an all-zero row.
    zeros: bool,
}

impl Op for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let keys = keys_of(x, self.strings, false)?;
        let mut out = vec![0.0f32; keys.len() * self.n];
        for (k, key) in keys.iter().enumerate() {
            match self.cats.get(key) {
                Some(&c) => out[k * self.n + c] = 1.0,
                None if self.zeros => {}
                None => fail!("unknown category {key:?}"),
            }
        }
        let mut shape = x.shape().to_vec();
        shape.push(self.n);
        Ok(vec![Tensor::new(shape, TensorData::F32(out))?])
    }
}

pub fn one_hot_encoder(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&["cats_int64s", "cats_strings", "zeros"])?;
    let ints = a.ints("cats_int64s")?;
    let strings = a.strings("cats_strings")?;
    let (keys, strings): (Vec<Key>, bool) = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => (ints.into_iter().map(Key::Int).collect(), false),
        (true, false) => (strings.into_iter().map(Key::Str).collect(), true),
        _ => fail!("exactly one of cats_int64s and cats_strings must be set"),
    };
    let n = keys.len();
    let cats = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
    Ok(Box::new(OneHotEncoder {
        cats,
        n,
        strings,
        zeros: a.int_or("zeros", 1)? != 0,
    }))
}

/// Output values of a mapping, one kind per operator.
#[derive(Clone)]
enum Values {
    Ints(Vec<i64>),
    Strs(Vec<Vec<u8>>),
    Floats(Vec<f32>),
}

struct Mapper {
    map: HashMap<Key, usize>,
    values: Values,
    default: Values,
    key_strings: bool,
    key_floats: bool,
}

impl Op for Mapper {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let keys = keys_of(x, self.key_strings, self.key_floats)?;
        let slots: Vec<Option<usize>> = keys.iter().map(|k| self.map.get(k).copied()).collect();
        let data = match (&self.values, &self.default) {
            (Values::Ints(v), Values::Ints(d)) => {
                TensorData::I64(slots.iter().map(|s| s.map_or(d[0], |i| v[i])).collect())
            }
            (Values::Strs(v), Values::Strs(d)) => TensorData::Bytes(
                slots
                    .iter()
                    .map(|s| s.map_or_else(|| d[0].clone(), |i| v[i].clone()))
                    .collect(),
            ),
            (Values::Floats(v), Values::Floats(d)) => {
                TensorData::F32(slots.iter().map(|s| s.map_or(d[0], |i| v[i])).collect())
            }
            _ => unreachable!("values and default are built of one kind"),
        };
        Ok(vec![Tensor::new(x.shape().to_vec(), data)?])
    }
}

fn values_len(v: &Values) -> usize {
    match v {
        Values::Ints(v) => v.len(),
        Values::Strs(v) => v.len(),
        Values::Floats(v) => v.len(),
    }
}

pub fn label_encoder(a: &Attrs, opset: i64) -> OpResult<Box<dyn Op>> {
    if opset < 2 {
        // Opset 1: `classes_strings` maps strings to their index, and back.
        a.only(&["classes_strings", "default_int64", "default_string"])?;
        let classes = a.strings("classes_strings")?;
        return Ok(Box::new(Mapper {
            map: classes
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, s)| (Key::Str(s), i))
                .collect(),
            values: Values::Ints((0..classes.len() as i64).collect()),
            default: Values::Ints(vec![a.int_or("default_int64", -1)?]),
            key_strings: true,
            key_floats: false,
        }));
    }
    a.only(&[
        "keys_strings",
        "keys_int64s",
        "keys_floats",
        "values_strings",
        "values_int64s",
        "values_floats",
        "default_string",
        "default_int64",
        "default_float",
    ])?;
    let (keys, key_strings, key_floats): (Vec<Key>, bool, bool) = if a.has("keys_strings") {
        (
            a.strings("keys_strings")?
                .into_iter()
                .map(Key::Str)
                .collect(),
            true,
            false,
        )
    } else if a.has("keys_int64s") {
        (
            a.ints("keys_int64s")?.into_iter().map(Key::Int).collect(),
            false,
            false,
        )
    } else if a.has("keys_floats") {
        (
            a.floats("keys_floats")?
                .into_iter()
                .map(|f| float_key(f as f64))
                .collect(),
            false,
            true,
        )
    } else {
        fail!("one of keys_strings, keys_int64s, keys_floats is required (keys_tensor is not supported)");
    };
    let (values, default) = if a.has("values_strings") {
        (
            Values::Strs(a.strings("values_strings")?),
            Values::Strs(vec![a.string_or("default_string", "_Unused")?.into_bytes()]),
        )
    } else if a.has("values_int64s") {
        (
            Values::Ints(a.ints("values_int64s")?),
            Values::Ints(vec![a.int_or("default_int64", -1)?]),
        )
    } else if a.has("values_floats") {
        (
            Values::Floats(a.floats("values_floats")?),
            Values::Floats(vec![a.float_or("default_float", -0.0)?]),
        )
    } else {
        fail!("one of values_strings, values_int64s, values_floats is required");
    };
    if values_len(&values) != keys.len() {
        fail!("{} keys but {} values", keys.len(), values_len(&values));
    }
    let map = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
    Ok(Box::new(Mapper {
        map,
        values,
        default,
        key_strings,
        key_floats,
    }))
}

pub fn category_mapper(a: &Attrs) -> OpResult<Box<dyn Op>> {
    a.only(&[
        "cats_strings",
        "cats_int64s",
        "default_string",
        "default_int64",
    ])?;
    let strings = a.strings("cats_strings")?;
    let ints = a.ints("cats_int64s")?;
    if strings.len() != ints.len() {
        fail!(
            "{} string categories but {} integer ones",
            strings.len(),
            ints.len()
        );
    }
    // The direction is decided by the input type at run time; build both maps here.
    Ok(Box::new(CategoryMapper {
        to_int: Mapper {
            map: strings
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, s)| (Key::Str(s), i))
                .collect(),
            values: Values::Ints(ints.clone()),
            default: Values::Ints(vec![a.int_or("default_int64", -1)?]),
            key_strings: true,
            key_floats: false,
        },
        to_string: Mapper {
            map: ints
                .iter()
                .enumerate()
                .map(|(i, &k)| (Key::Int(k), i))
                .collect(),
            values: Values::Strs(strings),
            default: Values::Strs(vec![a.string_or("default_string", "_Unused")?.into_bytes()]),
            key_strings: false,
            key_floats: false,
        },
    }))
}

struct CategoryMapper {
    to_int: Mapper,
    to_string: Mapper,
}

impl Op for CategoryMapper {
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        match input(inputs, 0)?.data() {
            TensorData::Bytes(_) => self.to_int.run(inputs),
            _ => self.to_string.run(inputs),
        }
    }
}
