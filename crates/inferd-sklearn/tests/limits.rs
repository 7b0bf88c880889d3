//! Hostile sizes are refused before they are allocated: huge memo indexes, deep nesting, arrays
//! whose claimed size is a lie, length prefixes past the end, decompression bombs. A counting
//! allocator measures the peak bytes each case allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use inferd_sklearn::{load_with_limits, Error, Limits};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator and only keeps counters; the
// layout contract is the caller's, exactly as for `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Loads `file`, returning the error and the most bytes allocated meanwhile.
fn attempt(file: &[u8], limits: &Limits) -> (Error, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let err = load_with_limits(file, limits).expect_err("hostile file must be refused");
    (err, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn u(s: &str) -> Vec<u8> {
    let mut out = vec![0x8c, s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

fn sg(module: &str, name: &str) -> Vec<u8> {
    [u(module), u(name), vec![0x93]].concat()
}

/// A joblib `NumpyArrayWrapper` for float64 `shape` (given as LONG1-encoded dims), followed
/// by `data` as the array bytes.
fn wrapper(dims: &[u64], data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x04];
    p.extend(sg("joblib.numpy_pickle", "NumpyArrayWrapper"));
    p.extend([b')', 0x81, b'}', b'(']);
    p.extend(u("subclass"));
    p.extend(sg("numpy", "ndarray"));
    p.extend(u("shape"));
    p.push(b'(');
    for d in dims {
        p.extend([0x8a, 8]);
        p.extend(d.to_le_bytes());
    }
    p.push(b't');
    p.extend(u("order"));
    p.extend(u("C"));
    p.extend(u("dtype"));
    p.extend(sg("numpy", "dtype"));
    p.extend(u("f8"));
    p.extend([0x89, 0x88, 0x87, b'R']);
    p.extend([b'u', b'b']);
    p.extend(data);
    p.push(b'.');
    p
}

/// The counters are global: tests that measure take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn hostile_sizes_are_refused_before_allocating() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let limits = Limits::default();
    // Every case must stay far below what it claims; 16 MiB covers the reader's own needs.
    let cap = 16 << 20;
    let mut cases: Vec<(&str, Vec<u8>, Limits, &str)> = Vec::new();

    let mut p = vec![
        0x80, 0x02, b'N', b'r', 0xff, 0xff, 0xff, 0xff, b'j', 0xfe, 0xff, 0xff, 0xff, b'.',
    ];
    cases.push((
        "memo index never written",
        p.clone(),
        limits.clone(),
        "memo entry",
    ));
    p = vec![0x80, 0x04];
    for _ in 0..5000 {
        p.extend([b'N', 0x94]);
    }
    p.push(b'.');
    let small_memo = Limits {
        max_memo: 1000,
        ..Limits::default()
    };
    cases.push(("memo past its limit", p, small_memo, "memo"));

    p = vec![0x80, 0x02];
    p.extend(std::iter::repeat_n(b']', 100_000));
    p.extend(std::iter::repeat_n(b'a', 99_999));
    p.push(b'.');
    cases.push((
        "lists nested 100,000 deep",
        p,
        limits.clone(),
        "nested too deeply",
    ));
    p = vec![0x80, 0x02, b'N'];
    p.extend(std::iter::repeat_n(0x85, 100_000));
    p.push(b'.');
    cases.push((
        "tuples nested 100,000 deep",
        p,
        limits.clone(),
        "nested too deeply",
    ));
    p = vec![0x80, 0x02];
    p.extend(std::iter::repeat_n(b'(', 100_000));
    cases.push((
        "100,000 MARKs",
        p,
        limits.clone(),
        "MARKs nested too deeply",
    ));

    cases.push((
        "array of 2^40 floats",
        wrapper(&[1 << 40], &[]),
        limits.clone(),
        "larger than allowed",
    ));
    cases.push((
        "array shape overflowing",
        wrapper(&[1 << 62, 1 << 62], &[]),
        limits.clone(),
        "larger than allowed",
    ));
    cases.push((
        "array of 10^8 floats with 16 bytes",
        wrapper(&[100_000_000], &[0; 16]),
        limits.clone(),
        "claims",
    ));

    let mut p = vec![0x80, 0x04, 0x8e];
    p.extend((1u64 << 60).to_le_bytes());
    cases.push((
        "BINBYTES8 of 2^60 bytes",
        p,
        limits.clone(),
        "limit exceeded",
    ));
    let mut p = vec![0x80, 0x02, 0x8b];
    p.extend(u32::MAX.to_le_bytes());
    cases.push(("LONG4 of 4 GiB", p, limits.clone(), "limit exceeded"));
    let mut p = vec![0x80, 0x02, b'X'];
    p.extend(u32::MAX.to_le_bytes());
    cases.push(("BINUNICODE of 4 GiB", p, limits.clone(), "limit exceeded"));
    let mut p = vec![0x80, 0x02, b'B'];
    p.extend((1u32 << 30).to_le_bytes());
    cases.push((
        "BINBYTES of 1 GiB, file of 7 bytes",
        p,
        limits.clone(),
        "ends early",
    ));

    // 256 MiB of zeros deflates to a few hundred KiB; not a pickle from its first byte.
    cases.push((
        "zlib bomb of zeros",
        bomb(Codec::Zlib, &[], 256 << 20),
        limits.clone(),
        "not a pickle",
    ));
    // The same framed as a pickle, under a small limit: refused at the limit's first byte over.
    let small = Limits {
        max_decompressed_bytes: 4 << 20,
        ..Limits::default()
    };
    cases.push((
        "zlib bomb framed as a pickle, 4 MiB limit",
        bomb(Codec::Zlib, &BINBYTES8_2GIB, 256 << 20),
        small,
        "decompresses to more than allowed (4 MiB)",
    ));

    for (what, file, limits, expect) in cases {
        let (err, peak) = attempt(&file, &limits);
        let msg = err.to_string();
        assert!(
            msg.contains(expect),
            "{what}: {msg:?} should mention {expect:?}"
        );
        eprintln!("{what}: refused after allocating at most {peak} bytes");
        assert!(peak < cap, "{what}: allocated {peak} bytes");
    }
}

#[derive(Debug, Clone, Copy)]
enum Codec {
    Zlib,
    Gzip,
    Lz4,
}

/// A pickle's start claiming one bytes object of 2 GiB (BINBYTES8): what the zeros after it
/// would be, were they let through.
const BINBYTES8_2GIB: [u8; 11] = [0x80, 0x04, 0x8e, 0, 0, 0, 0x80, 0, 0, 0, 0];

/// `header` then `zeros` zero bytes, compressed as joblib's `compress=` would, written through
/// the encoder 1 MiB at a time so the test never holds the expanded stream.
fn bomb(codec: Codec, header: &[u8], zeros: usize) -> Vec<u8> {
    fn fill<W: Write>(mut w: W, header: &[u8], zeros: usize) -> W {
        w.write_all(header).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..zeros / chunk.len() {
            w.write_all(&chunk).unwrap();
        }
        w
    }
    let level = flate2::Compression::default();
    match codec {
        Codec::Zlib => {
            let w = flate2::write::ZlibEncoder::new(Vec::new(), level);
            fill(w, header, zeros).finish().unwrap()
        }
        Codec::Gzip => {
            let w = flate2::write::GzEncoder::new(Vec::new(), level);
            fill(w, header, zeros).finish().unwrap()
        }
        Codec::Lz4 => {
            let w = lz4_flex::frame::FrameEncoder::new(Vec::new());
            fill(w, header, zeros).finish().unwrap()
        }
    }
}

#[test]
fn bombs_past_the_default_limit_are_refused_before_their_output_is_allocated() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The bomb, 2 GiB through zlib; gzip and lz4 just past the limit, which is what
    // the refusal costs whatever the size (lz4 decodes these zeros at about 100 MB/s).
    for (codec, zeros) in [
        (Codec::Zlib, 2 << 30),
        (Codec::Gzip, (1 << 30) + (1 << 20)),
        (Codec::Lz4, (1 << 30) + (1 << 20)),
    ] {
        let file = bomb(codec, &BINBYTES8_2GIB, zeros);
        let start = Instant::now();
        let (err, peak) = attempt(&file, &Limits::default());
        eprintln!(
            "{codec:?} bomb of {} KiB expanding to {} MiB: refused in {:.2?} after allocating \
             at most {peak} bytes",
            file.len() >> 10,
            zeros >> 20,
            start.elapsed()
        );
        let msg = err.to_string();
        assert!(
            msg.contains("decompresses to more than allowed (1024 MiB)"),
            "{codec:?}: {msg}"
        );
        // The decoder's state and one 64 KiB chunk; nothing for the 2 GiB.
        assert!(peak < 1 << 20, "{codec:?}: allocated {peak} bytes");
    }
}

#[test]
fn a_compressed_model_decompresses_to_exactly_its_size_and_no_further() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sklearn");
    let plain = std::fs::read(dir.join("1.9.1/rf_clf_iris_zlib.pkl")).unwrap();
    let size = inferd_sklearn::joblib::unwrap_container(&plain, &Limits::default())
        .unwrap()
        .len();
    let exactly = Limits {
        max_decompressed_bytes: size,
        ..Limits::default()
    };
    assert!(load_with_limits(&plain, &exactly).is_ok());
    let short = Limits {
        max_decompressed_bytes: size - 1,
        ..Limits::default()
    };
    let (err, peak) = attempt(&plain, &short);
    assert!(err.to_string().contains("more than allowed"), "{err}");
    assert!(peak < 1 << 20, "allocated {peak} bytes");
}
