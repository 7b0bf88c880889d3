//! Hostile sizes are refused before they are allocated: huge memo indexes, deep nesting, arrays
//! whose claimed size is a lie, length prefixes past the end, decompression bombs. A counting
//! allocator measures the peak bytes each case allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

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

#[test]
fn hostile_sizes_are_refused_before_allocating() {
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

    // 256 MiB of zeros deflates to a few hundred KiB.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        z.write_all(&zeros).unwrap();
    }
    drop(zeros);
    let bomb = z.finish().unwrap();
    let small = Limits {
        max_decompressed_bytes: 4 << 20,
        ..Limits::default()
    };
    cases.push((
        "zlib bomb",
        bomb,
        small,
        "decompresses to more than allowed",
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
