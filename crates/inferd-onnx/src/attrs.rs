//! Typed access to a node's attributes at load time. Every operator lists the attributes it
//! understands; anything else on the node is an error naming it, so a model never runs with an
//! attribute silently ignored.

use crate::error::{fail, OpResult};
use crate::proto::{attribute_type as at, AttributeProto, NodeProto};
use crate::tensor::from_proto;
use inferd_core::Tensor;

pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Self { node }
    }

    /// Refuses attributes outside `known` (and references to function attributes).
    pub fn only(&self, known: &[&str]) -> OpResult<()> {
        for a in &self.node.attribute {
            if !a.ref_attr_name.is_empty() {
                fail!(
                    "attribute '{}' refers to a function attribute, which is not supported",
                    a.name
                );
            }
            if !known.contains(&a.name.as_str()) {
                fail!("unsupported attribute '{}'", a.name);
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// The attribute's declared type, checked; `None` when absent. Old writers (IR < 2) leave
    /// the type unset, so an unset type is accepted and the field is read as asked.
    fn typed(&self, name: &str, want: i32) -> OpResult<Option<&'a AttributeProto>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == want || a.r#type == 0 => Ok(Some(a)),
            Some(a) => fail!(
                "attribute '{name}' has type {} where {want} was expected",
                a.r#type
            ),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str) -> OpResult<Option<i64>> {
        Ok(self.typed(name, at::INT)?.map(|a| a.i))
    }

    pub fn int_or(&self, name: &str, default: i64) -> OpResult<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float(&self, name: &str) -> OpResult<Option<f32>> {
        Ok(self.typed(name, at::FLOAT)?.map(|a| a.f))
    }

    pub fn float_or(&self, name: &str, default: f32) -> OpResult<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn string(&self, name: &str) -> OpResult<Option<String>> {
        match self.typed(name, at::STRING)? {
            None => Ok(None),
            Some(a) => match String::from_utf8(a.s.clone()) {
                Ok(s) => Ok(Some(s)),
                Err(_) => fail!("attribute '{name}' is not UTF-8"),
            },
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> OpResult<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn ints(&self, name: &str) -> OpResult<Vec<i64>> {
        Ok(self
            .typed(name, at::INTS)?
            .map(|a| a.ints.clone())
            .unwrap_or_default())
    }

    pub fn floats(&self, name: &str) -> OpResult<Vec<f32>> {
        Ok(self
            .typed(name, at::FLOATS)?
            .map(|a| a.floats.clone())
            .unwrap_or_default())
    }

    pub fn strings(&self, name: &str) -> OpResult<Vec<Vec<u8>>> {
        Ok(self
            .typed(name, at::STRINGS)?
            .map(|a| a.strings.clone())
            .unwrap_or_default())
    }

    pub fn tensor(&self, name: &str) -> OpResult<Option<Tensor>> {
        match self.typed(name, at::TENSOR)? {
            None => Ok(None),
            Some(a) => match &a.t {
                Some(t) => Ok(Some(from_proto(t)?)),
                None => fail!("attribute '{name}' has no tensor"),
            },
        }
    }

    /// A float list given either as `name` (floats) or, from ai.onnx.ml opset 3, as
    /// `name_as_tensor` (float or double tensor); the tensor form keeps double precision.
    pub fn floats_or_tensor(&self, name: &str) -> OpResult<Vec<f64>> {
        let as_tensor = format!("{name}_as_tensor");
        match (self.has(name), self.tensor(&as_tensor)?) {
            (true, Some(_)) => fail!("both '{name}' and '{as_tensor}' are set"),
            (_, Some(t)) => Ok(t.to_f64()?.into_owned()),
            (_, None) => Ok(self.floats(name)?.into_iter().map(f64::from).collect()),
        }
    }
}
