//! Parsing JSON arrays of numbers, booleans or strings (flat or nested) straight into one flat,
//! typed buffer plus the shape they form, without an intermediate `serde_json::Value`.
//!
//! A [`Nested`] is driven through serde as a `DeserializeSeed`, so it works inside any other
//! visitor (the seed's `/predict` body, V2 `data`, TF Serving `instances`). It checks, while it
//! parses: the element type, the element cap, the depth, and that nested lists are rectangular.

use std::fmt;

use inferd_core::{tensor, DataType, TensorData};
use serde::de::{self, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

/// Where parsed elements go, typed by the tensor's datatype. Integer types are range-checked
/// against their own type as they are parsed ([`DataType::int_range`], core's one rule) and kept
/// as `i64` until [`Sink::into_data`] widens them to the core type.
#[derive(Debug)]
pub enum Sink {
    F32(Vec<f32>),
    F64(Vec<f64>),
    Int { data: Vec<i64>, datatype: DataType },
    Bool(Vec<bool>),
    Bytes(Vec<Vec<u8>>),
}

impl Sink {
    /// A sink for JSON data of `datatype`, with room for `capacity` elements (already checked
    /// against the element cap by the caller).
    pub fn for_datatype(datatype: DataType, capacity: usize) -> Result<Self, String> {
        use DataType::*;
        Ok(match datatype {
            F32 => Sink::F32(Vec::with_capacity(capacity)),
            F64 => Sink::F64(Vec::with_capacity(capacity)),
            Bool => Sink::Bool(Vec::with_capacity(capacity)),
            Bytes => Sink::Bytes(Vec::with_capacity(capacity)),
            I8 | I16 | I32 | I64 | U8 | U16 | U32 | U64 => Sink::Int {
                data: Vec::with_capacity(capacity),
                datatype,
            },
            F16 | BF16 => {
                return Err(format!(
                    "{} data travels only in binary form (parameters.binary_data_size)",
                    datatype.as_str()
                ))
            }
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Sink::F32(v) => v.len(),
            Sink::F64(v) => v.len(),
            Sink::Int { data, .. } => data.len(),
            Sink::Bool(v) => v.len(),
            Sink::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expected(&self) -> &'static str {
        match self {
            Sink::F32(_) | Sink::F64(_) => "numbers",
            Sink::Int { .. } => "integers",
            Sink::Bool(_) => "booleans (true/false)",
            Sink::Bytes(_) => "strings",
        }
    }

    /// The parsed elements as a core buffer, widened to the core type of the datatype.
    pub fn into_data(self) -> TensorData {
        match self {
            Sink::F32(v) => TensorData::F32(v),
            Sink::F64(v) => TensorData::F64(v),
            Sink::Bool(v) => TensorData::Bool(v),
            Sink::Bytes(v) => TensorData::Bytes(v),
            Sink::Int { data, datatype, .. } => match datatype {
                DataType::I64 | DataType::U32 | DataType::U64 => TensorData::I64(data),
                // In range by construction: checked against the narrow type on the way in.
                _ => TensorData::I32(data.into_iter().map(|x| x as i32).collect()),
            },
        }
    }

    fn push_int(&mut self, v: i128) -> Result<(), String> {
        let index = self.len();
        match self {
            // JSON integers are at most 20 digits: far inside FP32's range, rounded like any
            // other number.
            Sink::F32(d) => push_f32(d, v as f64),
            Sink::F64(d) => {
                d.push(v as f64);
                Ok(())
            }
            Sink::Int { data, datatype } => {
                let fits = datatype
                    .int_range()
                    .is_some_and(|(min, max)| (i128::from(min)..=i128::from(max)).contains(&v));
                if !fits {
                    return Err(tensor::int_unfit(v, index, *datatype));
                }
                // In range of i64: every integer datatype's range is.
                data.push(v as i64);
                Ok(())
            }
            _ => Err(self.wrong("a number")),
        }
    }

    fn push_float(&mut self, v: f64) -> Result<(), String> {
        let index = self.len();
        match self {
            Sink::F32(d) => push_f32(d, v),
            Sink::F64(d) => {
                d.push(v);
                Ok(())
            }
            // serde_json reads an integer beyond u64 and i64 as a float: say it is out of range,
            // not that it is not an integer.
            Sink::Int { datatype, .. } if v.fract() == 0.0 && v.abs() >= 2f64.powi(63) => {
                Err(tensor::float_unfit(v, index, *datatype))
            }
            Sink::Int { .. } => Err(format!("must contain only integers, found {v}")),
            _ => Err(self.wrong("a number")),
        }
    }

    fn push_bool(&mut self, v: bool) -> Result<(), String> {
        match self {
            Sink::Bool(d) => {
                d.push(v);
                Ok(())
            }
            _ => Err(self.wrong("a boolean")),
        }
    }

    fn push_str(&mut self, v: &str) -> Result<(), String> {
        match self {
            Sink::Bytes(d) => {
                d.push(v.as_bytes().to_vec());
                Ok(())
            }
            _ => Err(self.wrong("a string")),
        }
    }

    fn wrong(&self, found: &str) -> String {
        format!("must contain only {}, found {found}", self.expected())
    }
}

/// Numbers beyond FP32's range are refused by core's one rule rather than made infinite.
fn push_f32(d: &mut Vec<f32>, v: f64) -> Result<(), String> {
    let x =
        tensor::f32_from_f64(v).ok_or_else(|| tensor::float_unfit(v, d.len(), DataType::F32))?;
    d.push(x);
    Ok(())
}

/// A flat or nested JSON array being parsed into a [`Sink`]. Drive it with [`Nested::seed`];
/// read the result with [`Nested::shape`] and [`Nested::into_sink`].
pub struct Nested<'w> {
    sink: Sink,
    /// Length of the lists at each depth, once the first list at that depth has closed.
    dims: Vec<Option<usize>>,
    /// Depth of the values, fixed by the first value (or empty list) seen.
    rank: Option<usize>,
    max_elements: usize,
    max_depth: usize,
    /// Names the array in error messages (`inputs`, `input 'x' data`).
    what: &'w str,
    over_limit: bool,
}

impl<'w> Nested<'w> {
    pub fn new(sink: Sink, what: &'w str, max_elements: usize, max_depth: usize) -> Self {
        Self {
            sink,
            dims: Vec::new(),
            rank: None,
            max_elements,
            max_depth,
            what,
            over_limit: false,
        }
    }

    /// The seed that parses the array; use it with `next_value_seed` or `deserialize`.
    pub fn seed(&mut self) -> Level<'_, 'w> {
        Level {
            nested: self,
            depth: 0,
        }
    }

    /// Whether parsing failed because the element cap was reached (a 413, not a 400).
    pub fn over_limit(&self) -> bool {
        self.over_limit
    }

    /// The shape the parsed lists formed (`[]` for a lone scalar).
    pub fn shape(&self) -> Vec<usize> {
        let rank = self.rank.unwrap_or(0);
        (0..rank)
            .map(|d| self.dims.get(d).copied().flatten().unwrap_or(0))
            .collect()
    }

    pub fn into_sink(self) -> Sink {
        self.sink
    }

    fn value(&mut self, depth: usize) -> Result<(), String> {
        match self.rank {
            None => self.rank = Some(depth),
            Some(rank) if rank != depth => {
                return Err(format!(
                    "{} mixes values and lists at the same level",
                    self.what
                ))
            }
            Some(_) => {}
        }
        if self.sink.len() >= self.max_elements {
            self.over_limit = true;
            return Err(format!(
                "{} has more than the limit of {} elements",
                self.what, self.max_elements
            ));
        }
        Ok(())
    }

    fn close(&mut self, depth: usize, count: usize) -> Result<(), String> {
        if count == 0 && self.rank.is_none() {
            self.rank = Some(depth + 1);
        }
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            None => self.dims[depth] = Some(count),
            Some(n) if n != count => {
                return Err(format!(
                    "{} is ragged: nested lists have different lengths ({n} and {count})",
                    self.what
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn push<E: de::Error>(
        &mut self,
        depth: usize,
        push: impl FnOnce(&mut Sink) -> Result<(), String>,
    ) -> Result<(), E> {
        self.value(depth).map_err(E::custom)?;
        push(&mut self.sink).map_err(|m| E::custom(format!("{} {m}", self.what)))
    }
}

/// One level of a [`Nested`] array: the seed and visitor serde drives.
pub struct Level<'n, 'w> {
    nested: &'n mut Nested<'w>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Level<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} as a list of {}",
            self.nested.what,
            self.nested.sink.expected()
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Level { nested, depth } = self;
        if depth >= nested.max_depth {
            return Err(A::Error::custom(format!(
                "{} is nested too deep",
                nested.what
            )));
        }
        if nested.rank.is_some_and(|rank| depth >= rank) {
            return Err(A::Error::custom(format!(
                "{} mixes values and lists at the same level",
                nested.what
            )));
        }
        let mut count = 0usize;
        while seq
            .next_element_seed(Level {
                nested: &mut *nested,
                depth: depth + 1,
            })?
            .is_some()
        {
            count += 1;
        }
        nested.close(depth, count).map_err(A::Error::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.nested.push(self.depth, |s| s.push_int(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.nested.push(self.depth, |s| s.push_int(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.nested.push(self.depth, |s| s.push_float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.nested.push(self.depth, |s| s.push_bool(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.nested.push(self.depth, |s| s.push_str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(format!(
            "{} must contain only {}, found null",
            self.nested.what,
            self.nested.sink.expected()
        )))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(format!(
            "{} must contain only {}, found an object",
            self.nested.what,
            self.nested.sink.expected()
        )))
    }
}

/// Parses a standalone JSON array (such as a V2 input's raw `data`) into `sink`.
pub fn parse(
    json: &str,
    sink: Sink,
    what: &str,
    max_elements: usize,
    max_depth: usize,
) -> Result<(Vec<usize>, Sink), (String, bool)> {
    let mut nested = Nested::new(sink, what, max_elements, max_depth);
    let mut de = serde_json::Deserializer::from_str(json);
    match nested.seed().deserialize(&mut de) {
        Ok(()) => Ok((nested.shape(), nested.into_sink())),
        Err(e) => Err((strip_position(&e), nested.over_limit())),
    }
}

/// serde_json appends "at line 1 column 12" to messages; inside an embedded value that
/// position is relative to the value, which would only mislead.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(json: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let sink = Sink::for_datatype(DataType::F32, 0).unwrap();
        let (shape, sink) = parse(json, sink, "inputs", 100, 8).map_err(|e| e.0)?;
        match sink.into_data() {
            TensorData::F32(v) => Ok((shape, v)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flat_and_nested_arrays_give_their_shape() {
        assert_eq!(
            f32s("[1, 2.5, -3]").unwrap(),
            (vec![3], vec![1.0, 2.5, -3.0])
        );
        assert_eq!(f32s("[[1,2],[3,4],[5,6]]").unwrap().0, vec![3, 2]);
        assert_eq!(f32s("[[[1],[2]]]").unwrap().0, vec![1, 2, 1]);
        assert_eq!(f32s("[]").unwrap().0, vec![0]);
        assert_eq!(f32s("[[],[]]").unwrap().0, vec![2, 0]);
        assert_eq!(f32s("7").unwrap().0, Vec::<usize>::new());
    }

    #[test]
    fn bad_arrays_are_refused_with_a_reason() {
        for (json, needle) in [
            ("[[1,2],[3]]", "ragged"),
            ("[[1,2],3]", "mixes values and lists"),
            ("[1,[2]]", "mixes values and lists"),
            ("[1, null]", "found null"),
            ("[1, \"a\"]", "found a string"),
            ("[true]", "found a boolean"),
            ("[{}]", "found an object"),
            ("[1e39]", "out of range for FP32"),
            ("[[[[[[[[[1]]]]]]]]]", "nested too deep"),
        ] {
            let err = f32s(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn numbers_that_do_not_fit_are_named_with_their_position() {
        assert_eq!(
            f32s("[[1, 2], [3, -1e39]]").unwrap_err(),
            "inputs has -1e39 at element 3, out of range for FP32"
        );
        let sink = Sink::for_datatype(DataType::U8, 0).unwrap();
        let (message, _) = parse("[0, 256]", sink, "input 'x' data", 100, 8).unwrap_err();
        assert_eq!(
            message,
            "input 'x' data has 256 at element 1, out of range for UINT8"
        );
        // Beyond u64, JSON integers reach the parser as floats.
        let sink = Sink::for_datatype(DataType::I64, 0).unwrap();
        let (message, _) = parse("[-1e30]", sink, "x", 100, 8).unwrap_err();
        assert_eq!(message, "x has -1e30 at element 0, out of range for INT64");
        let sink = Sink::for_datatype(DataType::U64, 0).unwrap();
        let json = "[1, 36893488147419103232]";
        let (message, _) = parse(json, sink, "x", 100, 8).unwrap_err();
        assert_eq!(
            message,
            "x has 3.6893488147419103e19 at element 1, out of range for UINT64"
        );
    }

    #[test]
    fn the_element_cap_is_a_limit_not_a_parse_error() {
        let sink = Sink::for_datatype(DataType::F32, 0).unwrap();
        let many = format!("[{}]", vec!["1"; 101].join(","));
        let (_, over) = parse(&many, sink, "x", 100, 8).unwrap_err();
        assert!(over);
    }

    #[test]
    fn integer_types_are_range_checked_and_widened() {
        let parse_as = |dt, json| {
            let sink = Sink::for_datatype(dt, 0).unwrap();
            parse(json, sink, "x", 100, 8)
                .map(|(_, s)| s.into_data())
                .map_err(|e| e.0)
        };
        assert_eq!(
            parse_as(DataType::U8, "[0, 255]").unwrap(),
            TensorData::I32(vec![0, 255])
        );
        assert!(parse_as(DataType::U8, "[256]")
            .unwrap_err()
            .contains("out of range for UINT8"));
        assert!(parse_as(DataType::I8, "[-129]").is_err());
        assert!(parse_as(DataType::I64, "[1.5]")
            .unwrap_err()
            .contains("must contain only integers"));
        assert_eq!(
            parse_as(DataType::U32, "[4294967295]").unwrap(),
            TensorData::I64(vec![4294967295])
        );
        assert!(parse_as(DataType::U64, "[18446744073709551615]").is_err());
        assert_eq!(
            parse_as(DataType::Bool, "[true,false]").unwrap(),
            TensorData::Bool(vec![true, false])
        );
        assert_eq!(
            parse_as(DataType::Bytes, r#"["a\n", "é"]"#).unwrap(),
            TensorData::Bytes(vec![b"a\n".to_vec(), "é".as_bytes().to_vec()])
        );
        assert!(Sink::for_datatype(DataType::F16, 0).is_err());
    }
}
