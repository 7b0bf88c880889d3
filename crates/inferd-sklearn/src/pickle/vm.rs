//! The pickle machine: a loop over opcodes that pushes and pops inert values. It resolves
//! GLOBAL / STACK_GLOBAL / INST against the allowlist, turns REDUCE / NEWOBJ / BUILD into data
//! (interpreting the few numpy constructors it knows, recording everything else), and refuses
//! every opcode whose meaning is "ask the host" (persistent ids, the extension registry,
//! out-of-band buffers).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::joblib;
use crate::pickle::globals::{self, Global, Role};
use crate::pickle::opcodes::{self as op, name};
use crate::pickle::value::{truncate, ArrayData, Heap, Id, Value};
use crate::pickle::Limits;

/// The undecoded input, read front to back. joblib interleaves raw array bytes with opcodes,
/// so the array reader shares this cursor with the machine.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize> {
        usize::try_from(u64::from_le_bytes(self.le()?)).map_err(|_| Error::Truncated)
    }

    /// A text line of the old protocols (GLOBAL, INST), capped so a missing newline cannot make
    /// the reader scan or copy the whole file.
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().take(512).position(|&b| b == b'\n');
        let end =
            end.ok_or_else(|| Error::Malformed("over-long or unterminated text line".into()))?;
        let line = std::str::from_utf8(&rest[..end])
            .map_err(|_| Error::Malformed("text line is not UTF-8".into()))?;
        self.pos += end + 1;
        Ok(line)
    }
}

/// Decodes one pickle from `reader` into `heap`, returning the id of the value STOP returned.
pub fn load(reader: &mut Reader<'_>, heap: &mut Heap, limits: &Limits) -> Result<Id> {
    let mut budget = Budget { bytes: 0 };
    Machine {
        reader,
        heap,
        limits,
        budget: &mut budget,
        nesting: 0,
    }
    .run()
}

struct Budget {
    bytes: usize,
}

pub(crate) struct Machine<'r, 'a> {
    pub(crate) reader: &'r mut Reader<'a>,
    pub(crate) heap: &'r mut Heap,
    pub(crate) limits: &'r Limits,
    budget: &'r mut Budget,
    nesting: usize,
}

/// The per-pickle state: a nested pickle gets its own stack and memo, as in CPython.
struct Frame {
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    depth: HashMap<Id, usize>,
}

impl Machine<'_, '_> {
    /// Decodes the pickle that starts at the reader's position, in the same heap and budget.
    /// joblib writes object arrays this way, a whole pickle inside the outer one.
    pub(crate) fn nested(&mut self) -> Result<Id> {
        if self.nesting >= self.limits.max_nested_pickles {
            return Err(Error::Limit("pickles nested too deeply".into()));
        }
        Machine {
            reader: self.reader,
            heap: self.heap,
            limits: self.limits,
            budget: self.budget,
            nesting: self.nesting + 1,
        }
        .run()
    }

    /// Counts `n` bytes against the total budget before they are allocated.
    pub(crate) fn charge(&mut self, n: usize) -> Result<()> {
        self.budget.bytes = self.budget.bytes.saturating_add(n);
        if self.budget.bytes > self.limits.max_total_bytes {
            return Err(Error::Limit("the file holds more data than allowed".into()));
        }
        Ok(())
    }

    fn new_value(&mut self, value: Value) -> Result<Id> {
        if self.heap.len() >= self.limits.max_values {
            return Err(Error::Limit("the file holds too many values".into()));
        }
        Ok(self.heap.push(value))
    }

    fn run(mut self) -> Result<Id> {
        let mut f = Frame {
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            depth: HashMap::new(),
        };
        loop {
            let code = self.reader.byte()?;
            if code == op::STOP {
                let top = f.stack.pop().ok_or_else(|| stack_underflow(code))?;
                return Ok(top);
            }
            self.step(&mut f, code)?;
            if f.stack.len() > self.limits.max_stack {
                return Err(Error::Limit("pickle stack grew too large".into()));
            }
        }
    }

    fn push(&mut self, f: &mut Frame, value: Value) -> Result<()> {
        let id = self.new_value(value)?;
        f.stack.push(id);
        Ok(())
    }

    fn pop(&mut self, f: &mut Frame, code: u8) -> Result<Id> {
        let floor = f.marks.last().copied().unwrap_or(0);
        if f.stack.len() <= floor {
            return Err(stack_underflow(code));
        }
        Ok(f.stack.pop().expect("checked above"))
    }

    fn pop_mark(&mut self, f: &mut Frame, code: u8) -> Result<Vec<Id>> {
        let mark = f
            .marks
            .pop()
            .ok_or_else(|| Error::Malformed(format!("opcode {} without a MARK", name(code))))?;
        Ok(f.stack.split_off(mark))
    }

    fn top(&self, f: &Frame, code: u8) -> Result<Id> {
        let floor = f.marks.last().copied().unwrap_or(0);
        if f.stack.len() <= floor {
            return Err(stack_underflow(code));
        }
        Ok(*f.stack.last().expect("checked above"))
    }

    /// Records that `parent` now contains `children`, refusing nesting past the limit so that
    /// every later walk over the values stays shallow.
    fn nest(&self, f: &mut Frame, parent: Id, children: &[Id]) -> Result<()> {
        let deepest = children
            .iter()
            .map(|c| f.depth.get(c).copied().unwrap_or(0))
            .max();
        let d = deepest.map_or(0, |d| d + 1);
        if d > self.limits.max_depth {
            return Err(Error::Limit("values nested too deeply".into()));
        }
        let entry = f.depth.entry(parent).or_insert(0);
        *entry = (*entry).max(d);
        Ok(())
    }

    fn push_container(&mut self, f: &mut Frame, value: Value, children: &[Id]) -> Result<()> {
        let id = self.new_value(value)?;
        self.nest(f, id, children)?;
        f.stack.push(id);
        Ok(())
    }

    fn text(&mut self, len: usize) -> Result<String> {
        self.charge(len)?;
        let raw = self.reader.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| Error::Malformed("string is not UTF-8".into()))
    }

    fn bytes(&mut self, len: usize) -> Result<Vec<u8>> {
        self.charge(len)?;
        Ok(self.reader.take(len)?.to_vec())
    }

    fn global(&self, module: &str, name: &str) -> Result<&'static Global> {
        globals::lookup(module, name).ok_or_else(|| Error::Forbidden {
            name: format!("{}.{}", truncate(module), truncate(name)),
        })
    }

    fn memo_put(&mut self, f: &mut Frame, index: u64, code: u8) -> Result<()> {
        let top = self.top(f, code)?;
        if !f.memo.contains_key(&index) && f.memo.len() >= self.limits.max_memo {
            return Err(Error::Limit("pickle memo grew too large".into()));
        }
        f.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, f: &mut Frame, index: u64) -> Result<()> {
        let id = *f.memo.get(&index).ok_or_else(|| {
            Error::Malformed(format!("memo entry {index} is read before written"))
        })?;
        f.stack.push(id);
        Ok(())
    }

    fn step(&mut self, f: &mut Frame, code: u8) -> Result<()> {
        match code {
            op::PROTO => {
                let version = self.reader.byte()?;
                if version > 5 {
                    return Err(Error::Malformed(format!(
                        "pickle protocol {version} is unknown"
                    )));
                }
            }
            op::FRAME => {
                // Frames only tell a streaming reader how much to buffer.
                let len = self.reader.len_u64()?;
                if len > self.reader.remaining() {
                    return Err(Error::Truncated);
                }
            }
            op::MARK => {
                if f.marks.len() >= self.limits.max_depth {
                    return Err(Error::Limit("MARKs nested too deeply".into()));
                }
                f.marks.push(f.stack.len());
            }
            op::POP => {
                if f.stack.len() == f.marks.last().copied().unwrap_or(0) && !f.marks.is_empty() {
                    f.marks.pop();
                } else {
                    self.pop(f, code)?;
                }
            }
            op::POP_MARK => {
                self.pop_mark(f, code)?;
            }
            op::DUP => {
                let top = self.top(f, code)?;
                f.stack.push(top);
            }
            op::NONE => self.push(f, Value::None)?,
            op::NEWTRUE => self.push(f, Value::Bool(true))?,
            op::NEWFALSE => self.push(f, Value::Bool(false))?,
            op::BININT => {
                let v = i32::from_le_bytes(self.reader.le()?);
                self.push(f, Value::Int(v.into()))?
            }
            op::BININT1 => {
                let v = self.reader.byte()?;
                self.push(f, Value::Int(v.into()))?
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.reader.le()?);
                self.push(f, Value::Int(v.into()))?
            }
            op::LONG1 | op::LONG4 => {
                let len = if code == op::LONG1 {
                    self.reader.byte()? as usize
                } else {
                    self.reader.len_u32()?
                };
                self.charge(len)?;
                let raw = self.reader.take(len)?;
                let value = if raw.len() <= 8 {
                    Value::Int(long_le(raw)?)
                } else {
                    Value::BigInt
                };
                self.push(f, value)?
            }
            op::INT => {
                let line = self.reader.line()?;
                let value = match line {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(
                        line.parse()
                            .map_err(|_| Error::Malformed("bad INT".into()))?,
                    ),
                };
                self.push(f, value)?
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.reader.le()?);
                self.push(f, Value::Float(v))?
            }
            op::SHORT_BINUNICODE => {
                let len = self.reader.byte()? as usize;
                let s = self.text(len)?;
                self.push(f, Value::Str(s))?
            }
            op::BINUNICODE => {
                let len = self.reader.len_u32()?;
                let s = self.text(len)?;
                self.push(f, Value::Str(s))?
            }
            op::BINUNICODE8 => {
                let len = self.reader.len_u64()?;
                let s = self.text(len)?;
                self.push(f, Value::Str(s))?
            }
            // Python 2 `str`: numpy's own pickles of that era use it for raw array data.
            op::SHORT_BINSTRING | op::BINSTRING => {
                let len = if code == op::SHORT_BINSTRING {
                    self.reader.byte()? as usize
                } else {
                    self.reader.len_u32()?
                };
                let b = self.bytes(len)?;
                self.push(f, Value::Bytes(b))?
            }
            op::SHORT_BINBYTES => {
                let len = self.reader.byte()? as usize;
                let b = self.bytes(len)?;
                self.push(f, Value::Bytes(b))?
            }
            op::BINBYTES => {
                let len = self.reader.len_u32()?;
                let b = self.bytes(len)?;
                self.push(f, Value::Bytes(b))?
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let len = self.reader.len_u64()?;
                let b = self.bytes(len)?;
                self.push(f, Value::Bytes(b))?
            }
            op::READONLY_BUFFER => {
                self.top(f, code)?;
            }
            op::EMPTY_TUPLE => self.push(f, Value::Tuple(Vec::new()))?,
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop(f, code)?);
                }
                items.reverse();
                self.push_container(f, Value::Tuple(items.clone()), &items)?
            }
            op::TUPLE => {
                let items = self.pop_mark(f, code)?;
                self.push_container(f, Value::Tuple(items.clone()), &items)?
            }
            op::EMPTY_LIST => self.push(f, Value::List(Vec::new()))?,
            op::LIST => {
                let items = self.pop_mark(f, code)?;
                self.push_container(f, Value::List(items.clone()), &items)?
            }
            op::APPEND => {
                let item = self.pop(f, code)?;
                let list = self.top(f, code)?;
                self.extend(f, list, vec![item])?
            }
            op::APPENDS => {
                let items = self.pop_mark(f, code)?;
                let list = self.top(f, code)?;
                self.extend(f, list, items)?
            }
            op::EMPTY_DICT => self.push(f, Value::Dict(Vec::new()))?,
            op::DICT => {
                let items = self.pop_mark(f, code)?;
                let dict = self.new_value(Value::Dict(Vec::new()))?;
                f.stack.push(dict);
                self.set_items(f, dict, items)?
            }
            op::SETITEM => {
                let value = self.pop(f, code)?;
                let key = self.pop(f, code)?;
                let dict = self.top(f, code)?;
                self.set_items(f, dict, vec![key, value])?
            }
            op::SETITEMS => {
                let items = self.pop_mark(f, code)?;
                let dict = self.top(f, code)?;
                self.set_items(f, dict, items)?
            }
            op::EMPTY_SET => self.push(f, Value::Set(Vec::new()))?,
            op::ADDITEMS => {
                let items = self.pop_mark(f, code)?;
                let set = self.top(f, code)?;
                self.nest(f, set, &items)?;
                match self.heap.get_mut(set) {
                    Value::Set(v) => v.extend(items),
                    other => return Err(wrong_target("ADDITEMS", other)),
                }
            }
            op::FROZENSET => {
                let items = self.pop_mark(f, code)?;
                self.push_container(f, Value::Set(items.clone()), &items)?
            }
            op::BINPUT => {
                let i = self.reader.byte()?;
                self.memo_put(f, i.into(), code)?
            }
            op::LONG_BINPUT => {
                let i = u32::from_le_bytes(self.reader.le()?);
                self.memo_put(f, i.into(), code)?
            }
            op::MEMOIZE => {
                let i = f.memo.len() as u64;
                self.memo_put(f, i, code)?
            }
            op::BINGET => {
                let i = self.reader.byte()?;
                self.memo_get(f, i.into())?
            }
            op::LONG_BINGET => {
                let i = u32::from_le_bytes(self.reader.le()?);
                self.memo_get(f, i.into())?
            }
            op::GLOBAL => {
                let module = self.reader.line()?;
                let name = self.reader.line()?;
                let g = self.global(module, name)?;
                self.push(f, Value::Global(g))?
            }
            op::STACK_GLOBAL => {
                let name = self.pop(f, code)?;
                let module = self.pop(f, code)?;
                let (Value::Str(module), Value::Str(name)) =
                    (self.heap.get(module), self.heap.get(name))
                else {
                    return Err(Error::Malformed("STACK_GLOBAL needs two strings".into()));
                };
                let g = self.global(module, name)?;
                self.push(f, Value::Global(g))?
            }
            op::INST => {
                // Protocol 0/1 instantiation: name the class for the error, but build nothing.
                let module = self.reader.line()?;
                let name = self.reader.line()?;
                self.global(module, name)?;
                return Err(Error::Opcode(name_of(code)));
            }
            op::REDUCE => {
                let args = self.pop(f, code)?;
                let callable = self.pop(f, code)?;
                let args = self.tuple_items(args, "REDUCE arguments")?;
                let value = self.call(callable, &args)?;
                self.push_container(f, value, &args)?
            }
            op::NEWOBJ | op::NEWOBJ_EX => {
                if code == op::NEWOBJ_EX {
                    let kwargs = self.pop(f, code)?;
                    if !matches!(self.heap.get(kwargs), Value::Dict(d) if d.is_empty()) {
                        return Err(Error::Malformed("NEWOBJ_EX with keyword arguments".into()));
                    }
                }
                let args = self.pop(f, code)?;
                let class = self.pop(f, code)?;
                let args = self.tuple_items(args, "NEWOBJ arguments")?;
                let Value::Global(g) = *self.heap.get(class) else {
                    return Err(Error::Malformed(
                        "NEWOBJ on something that is not a class".into(),
                    ));
                };
                if g.role != Role::Inert && g.role != Role::ArrayWrapper {
                    return Err(Error::Malformed(format!("NEWOBJ on {}", g.qualified())));
                }
                let value = Value::Object {
                    class: g,
                    args: args.clone(),
                    state: None,
                };
                self.push_container(f, value, &args)?
            }
            op::BUILD => {
                let state = self.pop(f, code)?;
                let target = self.top(f, code)?;
                self.build(target, state)?;
                self.nest(f, target, &[state])?
            }
            // Everything else asks the host for something (persistent ids, the copyreg
            // extension registry, out-of-band buffers) or belongs to the text protocol 0/1
            // forms no scikit-learn file of protocol 2+ contains.
            _ => return Err(Error::Opcode(name_of(code))),
        }
        Ok(())
    }

    fn extend(&mut self, f: &mut Frame, list: Id, items: Vec<Id>) -> Result<()> {
        self.nest(f, list, &items)?;
        match self.heap.get_mut(list) {
            Value::List(v) => {
                v.extend(items);
                Ok(())
            }
            other => Err(wrong_target("APPEND", other)),
        }
    }

    fn set_items(&mut self, f: &mut Frame, dict: Id, items: Vec<Id>) -> Result<()> {
        if items.len() & 1 == 1 {
            return Err(Error::Malformed(
                "SETITEMS with an odd number of items".into(),
            ));
        }
        self.nest(f, dict, &items)?;
        let pairs: Vec<(Id, Id)> = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        match self.heap.get_mut(dict) {
            Value::Dict(d) => {
                d.extend(pairs);
                Ok(())
            }
            other => Err(wrong_target("SETITEM", other)),
        }
    }

    pub(crate) fn tuple_items(&self, id: Id, what: &str) -> Result<Vec<Id>> {
        match self.heap.get(id) {
            Value::Tuple(items) => Ok(items.clone()),
            other => Err(Error::Malformed(format!(
                "{what}: expected a tuple, got {}",
                other.type_name()
            ))),
        }
    }

    /// REDUCE: interprets the numpy constructors, records every other allowlisted callable.
    fn call(&mut self, callable: Id, args: &[Id]) -> Result<Value> {
        let g = match self.heap.get(callable) {
            Value::Global(g) => *g,
            other => {
                return Err(Error::Malformed(format!(
                    "REDUCE calls {}, which is not callable",
                    other.type_name()
                )))
            }
        };
        match g.role {
            Role::Inert => Ok(Value::Object {
                class: g,
                args: args.to_vec(),
                state: None,
            }),
            _ => self.call_numpy(g, args),
        }
    }

    /// BUILD: sets an object's state, completes a dtype or an array, or (joblib) reads the
    /// array a wrapper announces.
    fn build(&mut self, target: Id, state: Id) -> Result<()> {
        match self.heap.get(target) {
            Value::Object { class, .. } if class.role == Role::ArrayWrapper => {
                let array = joblib::read_wrapped_array(self, state)?;
                *self.heap.get_mut(target) = Value::Array(Box::new(array));
                Ok(())
            }
            Value::Object { state: None, .. } => {
                if let Value::Object { state: slot, .. } = self.heap.get_mut(target) {
                    *slot = Some(state);
                }
                Ok(())
            }
            Value::Dtype(_) => {
                let dtype = self.dtype_state(target, state)?;
                *self.heap.get_mut(target) = Value::Dtype(Box::new(dtype));
                Ok(())
            }
            Value::Array(a) if a.data == ArrayData::Pending => {
                let array = self.array_state(state)?;
                *self.heap.get_mut(target) = Value::Array(Box::new(array));
                Ok(())
            }
            other => Err(Error::Malformed(format!("BUILD on {}", other.type_name()))),
        }
    }
}

/// Python's two's-complement little-endian long, when it fits in i64.
fn long_le(raw: &[u8]) -> Result<i64> {
    if raw.len() > 8 {
        return Err(Error::Malformed("integer larger than 64 bits".into()));
    }
    if raw.is_empty() {
        return Ok(0);
    }
    let negative = raw[raw.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    buf[..raw.len()].copy_from_slice(raw);
    Ok(i64::from_le_bytes(buf))
}

fn name_of(code: u8) -> String {
    name(code)
}

fn stack_underflow(code: u8) -> Error {
    Error::Malformed(format!("opcode {} on an empty stack", name(code)))
}

fn wrong_target(what: &str, got: &Value) -> Error {
    Error::Malformed(format!("{what} on {}", got.type_name()))
}

pub(crate) fn bad_args(g: &Global) -> Error {
    Error::Malformed(format!("unexpected arguments for {}", g.qualified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<(Heap, Id)> {
        let mut heap = Heap::default();
        let root = load(&mut Reader::new(bytes), &mut heap, &Limits::default())?;
        Ok((heap, root))
    }

    #[test]
    fn python_longs() {
        assert_eq!(long_le(&[]).unwrap(), 0);
        assert_eq!(long_le(&[0xff]).unwrap(), -1);
        assert_eq!(long_le(&[0x00, 0x80]).unwrap(), -32768);
        assert_eq!(long_le(&[0xff, 0x00]).unwrap(), 255);
        assert!(long_le(&[0; 9]).is_err());
    }

    #[test]
    fn containers_and_memo() {
        // pickle.dumps({'a': [1, 2.5, None, True]}, protocol=4), framed.
        let p = b"\x80\x04\x95\x19\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88es.";
        let (heap, root) = run(p).unwrap();
        let list = heap.dict_get(root, "a").unwrap();
        let Value::List(items) = heap.get(list) else {
            panic!("not a list")
        };
        let values: Vec<_> = items.iter().map(|&i| heap.get(i).clone()).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::None,
                Value::Bool(true)
            ]
        );
    }

    #[test]
    fn shared_values_stay_shared() {
        // l = []; pickle.dumps([l, l], protocol=2): the second is a memo GET of the first.
        let (heap, root) = run(b"\x80\x02]q\x00(]q\x01h\x01e.").unwrap();
        let Value::List(items) = heap.get(root) else {
            panic!("not a list")
        };
        assert_eq!(items[0], items[1]);
    }

    #[test]
    fn stack_misuse_is_an_error_not_a_panic() {
        for p in [
            &b"\x80\x02."[..],
            b"\x80\x02a.",
            b"\x80\x02(s.",
            b"\x80\x02R.",
            b"\x80\x02N\x85\x81.",
            b"\x80\x06N.",
        ] {
            assert!(run(p).is_err(), "{p:?}");
        }
    }
}
