//! Typed access to a decoded estimator's attributes (its pickled `__dict__`). Every accessor
//! checks the type it expects, so a file that puts something else where an array belongs
//! (a class, a callable, a nested object) is refused with the attribute's name.

use crate::error::{Error, Result};
use crate::pickle::value::{Array, ArrayData, Heap, Id, Kind, Value};

/// A decoded scikit-learn object: its class name and its state dict.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'h> {
    pub heap: &'h Heap,
    pub class: &'static str,
    pub module: &'static str,
    state: Id,
}

impl<'h> Obj<'h> {
    /// `id` as an object built by REDUCE/NEWOBJ + BUILD with a dict state.
    pub fn new(heap: &'h Heap, id: Id) -> Result<Self> {
        match heap.get(id) {
            Value::Object {
                class,
                state: Some(state),
                ..
            } => {
                if !matches!(heap.get(*state), Value::Dict(_)) {
                    return Err(Error::Malformed(format!(
                        "{} has a state that is not a dict",
                        class.name
                    )));
                }
                Ok(Obj {
                    heap,
                    class: class.name,
                    module: class.module,
                    state: *state,
                })
            }
            other => Err(Error::Malformed(format!(
                "expected a fitted estimator, found {}",
                other.type_name()
            ))),
        }
    }

    fn err(&self, key: &str, what: &str) -> Error {
        Error::Malformed(format!("{}.{key} is not {what}", self.class))
    }

    pub fn opt(&self, key: &str) -> Option<Id> {
        self.heap
            .dict_get(self.state, key)
            .filter(|&id| !matches!(self.heap.get(id), Value::None))
    }

    pub fn get(&self, key: &str) -> Result<Id> {
        self.heap.dict_get(self.state, key).ok_or_else(|| {
            Error::Malformed(format!(
                "{} has no attribute '{key}' (is it fitted?)",
                self.class
            ))
        })
    }

    pub fn value(&self, key: &str) -> Result<&'h Value> {
        Ok(self.heap.get(self.get(key)?))
    }

    pub fn obj(&self, key: &str) -> Result<Obj<'h>> {
        Obj::new(self.heap, self.get(key)?).map_err(|_| self.err(key, "a fitted estimator"))
    }

    pub fn array(&self, key: &str) -> Result<&'h Array> {
        match self.value(key)? {
            Value::Array(a) if !matches!(a.data, ArrayData::Pending) => Ok(a),
            _ => Err(self.err(key, "a numpy array")),
        }
    }

    /// A numeric array, or a single number, flattened to f64.
    pub fn f64s(&self, key: &str) -> Result<Vec<f64>> {
        match self.value(key)? {
            Value::Array(a) => a.to_f64().map_err(|_| self.err(key, "a numeric array")),
            Value::Float(x) => Ok(vec![*x]),
            Value::Int(x) => Ok(vec![*x as f64]),
            _ => Err(self.err(key, "a number or numeric array")),
        }
    }

    pub fn float(&self, key: &str) -> Result<f64> {
        match self.value(key)? {
            Value::Float(x) => Ok(*x),
            Value::Int(x) => Ok(*x as f64),
            _ => Err(self.err(key, "a number")),
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        match self.value(key)? {
            Value::Int(x) => usize::try_from(*x).map_err(|_| self.err(key, "a count")),
            _ => Err(self.err(key, "an integer")),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.opt(key).map(|id| self.heap.get(id)) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Int(i)) => *i != 0,
            _ => default,
        }
    }

    pub fn str_or(&self, key: &str, default: &'h str) -> &'h str {
        match self.opt(key).map(|id| self.heap.get(id)) {
            Some(Value::Str(s)) => s,
            _ => default,
        }
    }

    /// Items of a list or tuple attribute.
    pub fn items(&self, key: &str) -> Result<&'h [Id]> {
        match self.value(key)? {
            Value::List(v) | Value::Tuple(v) => Ok(v),
            _ => Err(self.err(key, "a list")),
        }
    }

    /// The number of input features the estimator was fitted on.
    pub fn n_features_in(&self) -> Result<usize> {
        self.usize("n_features_in_")
    }
}

/// Elements of an object array (estimators in a GradientBoosting, say), in C order.
pub(crate) fn object_items(a: &Array) -> Result<&[Id]> {
    match (&a.data, a.dtype.kind) {
        (ArrayData::Objects(items), Kind::Object) => Ok(items),
        _ => Err(Error::Malformed("expected an array of objects".into())),
    }
}

/// Class labels as scikit-learn stores them in `classes_`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    pub fn read(heap: &Heap, id: Id) -> Result<Labels> {
        let Value::Array(a) = heap.get(id) else {
            return Err(Error::Malformed("classes_ is not an array".into()));
        };
        let labels = match a.dtype.kind {
            Kind::Int | Kind::UInt | Kind::Bool => Labels::Ints(a.to_i64()?),
            Kind::Float => Labels::Ints(a.to_i64().map_err(|_| {
                Error::Unsupported("class labels that are fractional numbers".into())
            })?),
            Kind::Unicode | Kind::ByteStr => Labels::Strings(a.to_strings()?),
            Kind::Object => {
                let mut out = Vec::new();
                for &item in object_items(a)? {
                    match heap.get(item) {
                        Value::Str(s) => out.push(s.clone()),
                        Value::Int(i) => out.push(i.to_string()),
                        other => {
                            return Err(Error::Unsupported(format!(
                                "class labels of type {}",
                                other.type_name()
                            )))
                        }
                    }
                }
                Labels::Strings(out)
            }
            Kind::Void => return Err(Error::Unsupported("record-typed class labels".into())),
        };
        if labels.len() < 2 {
            return Err(Error::Unsupported(
                "classifiers fitted on fewer than two classes".into(),
            ));
        }
        Ok(labels)
    }
}
