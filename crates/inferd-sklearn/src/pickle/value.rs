//! The inert values a pickle decodes to: plain data in an arena, numpy arrays and dtypes as
//! bytes plus a description, and "objects" that only record which allowlisted class they name
//! and the arguments and state the file gave them. Nothing here can call anything.

use crate::error::{Error, Result};
use crate::pickle::globals::Global;

/// Index of a value in its [`Heap`]. Pickles share and mutate values through the memo (a list
/// is memoised, then appended to), so values live in an arena and refer to each other by id.
pub type Id = usize;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits (seed entropy); kept opaque.
    BigInt,
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// An allowlisted class or function, named but never resolved to code.
    Global(&'static Global),
    /// What REDUCE / NEWOBJ / BUILD made of an allowlisted class: its name, the arguments the
    /// file passed, and the state it set. Only the estimator builders give this a meaning.
    Object {
        class: &'static Global,
        args: Vec<Id>,
        state: Option<Id>,
    },
    Dtype(Box<Dtype>),
    Array(Box<Array>),
}

impl Value {
    /// A short name for error messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Set(_) => "set".into(),
            Value::Global(g) => format!("the class or function {}", g.qualified()),
            Value::Object { class, .. } => format!("a {} object", class.name),
            Value::Dtype(_) => "numpy.dtype".into(),
            Value::Array(_) => "numpy.ndarray".into(),
        }
    }
}

/// What a numpy dtype stores, reduced to what the estimators need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    UInt,
    Float,
    /// Fixed-width UTF-32 text (`<U6`).
    Unicode,
    /// Fixed-width bytes (`S4`).
    ByteStr,
    /// Records with named fields (`V56` plus a field table).
    Void,
    /// Python objects (the elements are pickled values).
    Object,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub dtype: Dtype,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dtype {
    pub kind: Kind,
    pub itemsize: usize,
    pub big_endian: bool,
    pub fields: Vec<Field>,
}

impl Dtype {
    /// Parses numpy's type string as passed to `numpy.dtype(...)` in a pickle (`f8`, `<i4`,
    /// `V56`, `O8`, `U6`, `b1`).
    pub fn from_code(code: &str) -> Result<Dtype> {
        let (big_endian, rest) = match code.as_bytes().first() {
            Some(b'>') => (true, &code[1..]),
            Some(b'<' | b'|' | b'=') => (false, &code[1..]),
            _ => (false, code),
        };
        let bad = || Error::Malformed(format!("unsupported numpy dtype '{}'", truncate(code)));
        let mut chars = rest.chars();
        let letter = chars.next().ok_or_else(bad)?;
        let size: usize = chars.as_str().parse().map_err(|_| bad())?;
        let kind = match letter {
            'b' => Kind::Bool,
            'i' => Kind::Int,
            'u' => Kind::UInt,
            'f' => Kind::Float,
            'U' => Kind::Unicode,
            'S' => Kind::ByteStr,
            'V' => Kind::Void,
            'O' => Kind::Object,
            _ => return Err(bad()),
        };
        let itemsize = if kind == Kind::Unicode {
            size.checked_mul(4).ok_or_else(bad)?
        } else {
            size
        };
        let ok = match kind {
            Kind::Bool => size == 1,
            Kind::Int | Kind::UInt => matches!(size, 1 | 2 | 4 | 8),
            Kind::Float => matches!(size, 4 | 8),
            Kind::Object => size == 8,
            _ => size <= 1 << 20,
        };
        if !ok {
            return Err(bad());
        }
        Ok(Dtype {
            kind,
            itemsize,
            big_endian,
            fields: Vec::new(),
        })
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A numpy array, always held in C order with its elements' bytes as the file gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: ArrayData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// No data yet: made by `_reconstruct`, waiting for BUILD.
    Pending,
    Raw(Vec<u8>),
    Objects(Vec<Id>),
}

impl Array {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn raw(&self) -> Result<&[u8]> {
        match &self.data {
            ArrayData::Raw(bytes) => Ok(bytes),
            _ => Err(Error::Malformed("expected a numeric numpy array".into())),
        }
    }

    /// Every element as f64 (numeric dtypes only).
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        let raw = self.raw()?;
        let size = self.dtype.itemsize;
        raw.chunks_exact(size.max(1))
            .map(|b| scalar_f64(&self.dtype, b))
            .collect()
    }

    /// Every element as i64 (integer or integral float dtypes).
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        self.to_f64()?
            .into_iter()
            .map(|x| {
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    Ok(x as i64)
                } else {
                    Err(Error::Malformed(
                        "expected integers in a numpy array".into(),
                    ))
                }
            })
            .collect()
    }

    /// One named field of a record array, per record, as f64.
    pub fn field_f64(&self, name: &str) -> Result<Vec<f64>> {
        let field = self
            .dtype
            .field(name)
            .ok_or_else(|| Error::Malformed(format!("record array has no field '{name}'")))?;
        let size = field.dtype.itemsize;
        if field.offset + size > self.dtype.itemsize {
            return Err(Error::Malformed(format!(
                "field '{name}' lies outside its record"
            )));
        }
        let raw = self.raw()?;
        raw.chunks_exact(self.dtype.itemsize.max(1))
            .map(|rec| scalar_f64(&field.dtype, &rec[field.offset..field.offset + size]))
            .collect()
    }

    /// Elements of a text array (`U`/`S` dtypes), trailing NULs stripped as numpy does.
    pub fn to_strings(&self) -> Result<Vec<String>> {
        let raw = self.raw()?;
        let size = self.dtype.itemsize.max(1);
        raw.chunks_exact(size)
            .map(|b| match self.dtype.kind {
                Kind::Unicode => b
                    .chunks_exact(4)
                    .map(|c| {
                        let arr = [c[0], c[1], c[2], c[3]];
                        if self.dtype.big_endian {
                            u32::from_be_bytes(arr)
                        } else {
                            u32::from_le_bytes(arr)
                        }
                    })
                    .take_while(|&c| c != 0)
                    .map(|c| char::from_u32(c).ok_or_else(|| Error::Malformed("bad text".into())))
                    .collect(),
                Kind::ByteStr => {
                    let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
                    Ok(String::from_utf8_lossy(&b[..end]).into_owned())
                }
                _ => Err(Error::Malformed("expected a text numpy array".into())),
            })
            .collect()
    }
}

/// Decodes one element of a numeric dtype.
pub fn scalar_f64(dtype: &Dtype, b: &[u8]) -> Result<f64> {
    let mut buf = [0u8; 8];
    let n = b.len();
    if n == 0 || n > 8 || n != dtype.itemsize {
        return Err(Error::Malformed("expected a numeric numpy value".into()));
    }
    if dtype.big_endian {
        buf[..n].copy_from_slice(b);
        buf[..n].reverse();
    } else {
        buf[..n].copy_from_slice(b);
    }
    let signed = |bits: u32| {
        let v = u64::from_le_bytes(buf);
        let shift = 64 - bits;
        ((v << shift) as i64 >> shift) as f64
    };
    Ok(match (dtype.kind, n) {
        (Kind::Bool, 1) => f64::from(buf[0] != 0),
        (Kind::Int, _) => signed(8 * n as u32),
        (Kind::UInt, _) => u64::from_le_bytes(buf) as f64,
        (Kind::Float, 4) => f64::from(f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
        (Kind::Float, 8) => f64::from_le_bytes(buf),
        _ => return Err(Error::Malformed("expected a numeric numpy value".into())),
    })
}

/// The decoded file: every value, and the one `load` returned.
#[derive(Debug, Default)]
pub struct Heap {
    values: Vec<Value>,
}

impl Heap {
    pub fn push(&mut self, value: Value) -> Id {
        self.values.push(value);
        self.values.len() - 1
    }

    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    pub fn get_mut(&mut self, id: Id) -> &mut Value {
        &mut self.values[id]
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

impl Heap {
    /// The value under the string key `key` of the dict `id`, if `id` is a dict holding it.
    pub fn dict_get(&self, id: Id, key: &str) -> Option<Id> {
        match self.get(id) {
            Value::Dict(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| matches!(self.get(*k), Value::Str(s) if s == key))
                .map(|(_, v)| *v),
            _ => None,
        }
    }
}
