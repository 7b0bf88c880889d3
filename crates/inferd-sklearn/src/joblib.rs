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
        inflate(|| flate2::read::ZlibDecoder::new(file), limits)
    } else if file.starts_with(GZIP) {
        inflate(|| flate2::read::MultiGzDecoder::new(file), limits)
    } else if file.starts_with(LZ4) {
        inflate(|| lz4_flex::frame::FrameDecoder::new(file), limits)
    } else if file.starts_with(ZFILE) {
        Err(Error::Unsupported(
            "files written by joblib older than 0.10; load and save the model again with a current joblib".into(),
        ))
    } else if file.starts_with(BZ2) || file.starts_with(XZ) || file.starts_with(LZMA) {
        Err(Error::Unsupported(
            "bz2, lzma and xz compressed joblib files; save with compress=('zlib'|'gzip'|'lz4', level)".into(),
        ))
    } else if file.first().copied().is_some_and(starts_a_pickle) {
        Ok(Cow::Borrowed(file))
    } else {
        Err(Error::Format)
    }
}

/// Whether `first` can open a pickle. Protocol 2+ starts with PROTO; protocols 0/1 have no
/// header, so let the reader meet their first opcode and refuse it by name.
fn starts_a_pickle(first: u8) -> bool {
    matches!(first, 0x80 | b'(' | b'c' | b'i' | b']' | b'}')
}

/// Decompresses in two passes over the compressed bytes, which are in memory already. The
/// first measures the output while holding nothing but the decoder's state and one chunk, and
/// stops at the first chunk that is not a pickle's start, or at the first byte over the limit:
/// a bomb is refused before anything is allocated for its output, however far it would expand.
/// The second decompresses into a buffer of exactly the measured size, so a large model never
/// grows (and copies) its buffer on the way either. `decoder` makes a fresh decoder per pass.
///
/// The price is decompressing a valid file twice (inflate runs at hundreds of MB/s; a model
/// loads once). There is no cap on the ratio: real models reach 77x (a 300-class decision
/// tree with zlib level 9, its class counts mostly zeros) and more with more classes, while
/// deflate cannot pass about 1032x, so any ratio a real model never reaches would stop nothing.
fn inflate<'a, R: Read>(decoder: impl Fn() -> R, limits: &Limits) -> Result<Cow<'a, [u8]>> {
    let size = measure(decoder(), limits.max_decompressed_bytes)?;
    let mut out = Vec::with_capacity(size);
    decoder()
        .take(size as u64)
        .read_to_end(&mut out)
        .map_err(|e| Error::Decompress(e.kind().to_string()))?;
    if out.len() != size {
        // The bytes are the same both times; a decoder that disagrees with itself is broken.
        return Err(Error::Decompress("the stream changed between reads".into()));
    }
    Ok(Cow::Owned(out))
}

/// The decompressed size of `decoder`'s stream, read through one 64 KiB chunk, or an error as
/// soon as it is known not to be a pickle or to exceed `cap` bytes.
fn measure(mut decoder: impl Read, cap: usize) -> Result<usize> {
    let mut chunk = vec![0u8; 64 << 10];
    let mut total = 0usize;
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Decompress(e.kind().to_string())),
        };
        if total == 0 && !starts_a_pickle(chunk[0]) {
            return Err(Error::Malformed(
                "the file decompresses to something that is not a pickle".into(),
            ));
        }
        total += n;
        if total > cap {
            return Err(Error::Limit(format!(
                "the file decompresses to more than allowed ({} MiB)",
                cap >> 20
            )));
        }
    }
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
