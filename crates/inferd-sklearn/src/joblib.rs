//! joblib's container around a pickle: the compressions `joblib.dump(compress=...)` writes
//! (detected by magic number, as joblib itself does) and `NumpyArrayWrapper`, whose array
//! bytes follow it in the stream rather than inside the pickle.

use std::borrow::Cow;
use std::io::Read;

use crate::error::{Error, Result};
use crate::pickle::value::{Array, ArrayData, Id, Kind, Value};
use crate::pickle::Limits;

use crate::pickle::vm::Machine;

const ZLIB: &[u8] = b"\x78";
const GZIP: &[u8] = b"\x1f\x8b";
const LZ4: &[u8] = b"\x04\x22\x4d\x18";
const BZ2: &[u8] = b"BZ";
const XZ: &[u8] = b"\xfd\x37\x7a\x58\x5a";
const LZMA: &[u8] = b"\x5d\x00";
/// joblib before 0.10 wrote compressed files with a `ZF` header and arrays in side files.
const ZFILE: &[u8] = b"ZF";

/// The pickle stream inside a joblib (or plain pickle) file, decompressed if it was compressed,
/// never larger than `limits.max_decompressed_bytes`.
pub fn unwrap_container<'a>(file: &'a [u8], limits: &Limits) -> Result<Cow<'a, [u8]>> {
    if file.starts_with(ZLIB) {
        inflate(flate2::read::ZlibDecoder::new(file), limits)
    } else if file.starts_with(GZIP) {
        inflate(flate2::read::MultiGzDecoder::new(file), limits)
    } else if file.starts_with(LZ4) {
        inflate(lz4_flex::frame::FrameDecoder::new(file), limits)
    } else if file.starts_with(ZFILE) {
        Err(Error::Unsupported(
            "files written by joblib older than 0.10; load and save the model again with a current joblib".into(),
        ))
    } else if file.starts_with(BZ2) || file.starts_with(XZ) || file.starts_with(LZMA) {
        Err(Error::Unsupported(
            "bz2, lzma and xz compressed joblib files; save with compress=('zlib'|'gzip'|'lz4', level)".into(),
        ))
    } else if matches!(file.first(), Some(0x80 | b'(' | b'c' | b'i' | b']' | b'}')) {
        // Protocol 2+ starts with PROTO; protocols 0/1 have no header, so let the reader meet
        // their first opcode and refuse it by name.
        Ok(Cow::Borrowed(file))
    } else {
        Err(Error::Format)
    }
}

fn inflate<'a>(decoder: impl Read, limits: &Limits) -> Result<Cow<'a, [u8]>> {
    let cap = limits.max_decompressed_bytes;
    let mut out = Vec::new();
    decoder
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Decompress(e.kind().to_string()))?;
    if out.len() > cap {
        return Err(Error::Limit(
            "the file decompresses to more than allowed".into(),
        ));
    }
    Ok(Cow::Owned(out))
}

/// BUILD of a `NumpyArrayWrapper`: its state says shape, order and dtype; the bytes follow
/// (after an alignment pad) in the stream, or, for object arrays, a whole nested pickle does.
pub(crate) fn read_wrapped_array(m: &mut Machine<'_, '_>, state: Id) -> Result<Array> {
    let field = |key: &str| {
        m.heap
            .dict_get(state, key)
            .ok_or_else(|| Error::Malformed(format!("joblib array wrapper without '{key}'")))
    };
    let shape = m.shape(field("shape")?)?;
    let dtype = m.dtype(field("dtype")?)?;
    let fortran = matches!(m.heap.get(field("order")?), Value::Str(s) if s == "F");
    let aligned = m
        .heap
        .dict_get(state, "numpy_array_alignment_bytes")
        .is_some_and(|id| !matches!(m.heap.get(id), Value::None));

    if dtype.kind == Kind::Object {
        let inner = m.nested()?;
        return match m.heap.get(inner) {
            Value::Array(a) if matches!(a.data, ArrayData::Objects(_)) && a.shape == shape => {
                Ok((**a).clone())
            }
            _ => Err(Error::Malformed(
                "joblib object array does not match its wrapper".into(),
            )),
        };
    }
    if aligned {
        let pad = m.reader.byte()? as usize;
        m.reader.take(pad)?;
    }
    let len = m.array_bytes(&shape, &dtype)?;
    if len > m.reader.remaining() {
        return Err(Error::Malformed(format!(
            "an array of shape {shape:?} claims {len} bytes but only {} remain in the file",
            m.reader.remaining()
        )));
    }
    m.charge(len)?;
    let raw = m.reader.take(len)?.to_vec();
    m.array_from_raw(shape, dtype, raw, fortran)
}
