//! Products with a constant right operand (a layer's weights), packed once at load.
//!
//! A dense layer computes `A · W` with `A` the request's rows (`[m, k]`) and `W` a `[k, n]`
//! initializer. `W` is reordered at load into panels of [`NR`] columns, each panel holding
//! its `k` rows contiguously, so the kernel streams it front to back. Rows of `A` are taken
//! [`MR`] at a time: every weight loaded then feeds `MR` multiply-adds, which is what makes a
//! batch of rows cheaper per row than one row alone (one row can only stream the weights).
//! A lone row (or the last one to three rows of a batch) walks several panels at once instead,
//! so that enough independent sums are in flight to hide the latency of each multiply-add.
//!
//! Sums are accumulated in f64 in `p` order for every output, whatever the batch: a row's
//! answer is the same alone or batched with others (on a given CPU; fused multiply-adds,
//! used where the CPU has them, round once instead of twice).
//!
//! This is the crate's one module with `unsafe`: calling the AVX2+FMA build of the kernel,
//! which is sound only on a CPU that has both features. The call is guarded by a run-time
//! check of exactly those features (see [`multiply`]); everything else is safe code that the
//! compiler vectorises.

/// Columns per panel: two 256-bit registers of f64.
pub const NR: usize = 8;
/// Rows of `A` per full tile: 4 × 2 accumulator registers, plus the weights and the
/// broadcast row values, fit the 16 vector registers of AVX2.
const MR: usize = 4;

/// A `[k, n]` right operand, packed for [`multiply`].
pub struct Packed {
    k: usize,
    n: usize,
    /// `n.div_ceil(NR)` panels of `k × NR` values; columns past `n` in the last one are zero.
    panels: Vec<f64>,
}

impl Packed {
    /// Packs `b`, which is `[k, n]` row-major, or `[n, k]` when `transposed` (Gemm's `transB`,
    /// as PyTorch exports linear layers).
    pub fn new(b: &[f64], k: usize, n: usize, transposed: bool) -> Self {
        debug_assert_eq!(b.len(), k * n);
        let mut panels = vec![0.0; n.div_ceil(NR) * k * NR];
        for j in 0..n {
            let (q, c) = (j / NR, j % NR);
            for p in 0..k {
                panels[(q * k + p) * NR + c] = if transposed {
                    b[j * k + p]
                } else {
                    b[p * n + j]
                };
            }
        }
        Self { k, n, panels }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn memory_bytes(&self) -> usize {
        self.panels.len() * std::mem::size_of::<f64>()
    }

    /// `count` consecutive panels starting at panel `q`.
    fn panels(&self, q: usize, count: usize) -> &[f64] {
        let len = self.k * NR;
        &self.panels[q * len..(q + count) * len]
    }
}

/// `a · b` for `a` of `m` rows of `b.k()` values, row-major; returns `m × b.n()` values.
pub fn multiply(b: &Packed, a: &[f64], m: usize) -> Vec<f64> {
    assert_eq!(
        a.len(),
        m * b.k,
        "left operand does not match the packed operand"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[allow(unsafe_code)]
        // SAFETY: `multiply_avx2` only requires the CPU features checked just above.
        return unsafe { multiply_avx2(b, a, m) };
    }
    multiply_with::<false>(b, a, m)
}

/// The kernel compiled for AVX2 and FMA: the same code, vectorised four f64 wide with fused
/// multiply-adds. About twice the portable build's speed on a batch.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn multiply_avx2(b: &Packed, a: &[f64], m: usize) -> Vec<f64> {
    multiply_with::<true>(b, a, m)
}

/// The kernel; `FUSED` uses `mul_add`, which is one instruction only where FMA is enabled
/// (elsewhere it is a slow library call, so the portable build multiplies and adds).
#[inline(always)]
pub(crate) fn multiply_with<const FUSED: bool>(b: &Packed, a: &[f64], m: usize) -> Vec<f64> {
    let (k, n) = (b.k, b.n);
    let mut out = vec![0.0; m * n];
    if k == 0 || n == 0 {
        return out;
    }
    let full = m / MR;
    // Full tiles: every row block against one panel before moving to the next, so the panel
    // stays in cache while the (smaller) interleaved rows of A are reused from L2.
    let blocks = interleave(a, k, 0, full * MR, MR);
    for q in 0..n.div_ceil(NR) {
        let panel = b.panels(q, 1);
        for (blk, rows) in blocks.chunks_exact(MR * k).enumerate() {
            let acc = tile::<MR, 1, FUSED>(rows, panel, k);
            store(&acc, &mut out, n, blk * MR, q);
        }
    }
    let row0 = full * MR;
    let rest = interleave(a, k, row0, m - row0, m - row0);
    match m - row0 {
        1 => wide::<1, 4, FUSED>(b, &rest, &mut out, row0),
        2 => wide::<2, 2, FUSED>(b, &rest, &mut out, row0),
        3 => wide::<3, 1, FUSED>(b, &rest, &mut out, row0),
        _ => {}
    }
    out
}

/// Rows `row0..row0 + rows` of `a` (`k` wide), in blocks of `r` rows stored `p`-major
/// (`block[p * r + i]` is row `i`'s value `p`), the order the tile reads them in.
fn interleave(a: &[f64], k: usize, row0: usize, rows: usize, r: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * k];
    if rows == 0 {
        return out;
    }
    for (blk, block) in out.chunks_exact_mut(r * k).enumerate() {
        for i in 0..r {
            let row = &a[(row0 + blk * r + i) * k..][..k];
            for (p, &v) in row.iter().enumerate() {
                block[p * r + i] = v;
            }
        }
    }
    out
}

/// `R` rows against every panel, `P` panels at a time (and the leftover panels one by one).
#[inline(always)]
fn wide<const R: usize, const P: usize, const FUSED: bool>(
    b: &Packed,
    rows: &[f64],
    out: &mut [f64],
    row0: usize,
) {
    let panels = b.n.div_ceil(NR);
    let mut q = 0;
    while q + P <= panels {
        let acc = tile::<R, P, FUSED>(rows, b.panels(q, P), b.k);
        store(&acc, out, b.n, row0, q);
        q += P;
    }
    while q < panels {
        let acc = tile::<R, 1, FUSED>(rows, b.panels(q, 1), b.k);
        store(&acc, out, b.n, row0, q);
        q += 1;
    }
}

/// `R` interleaved rows times `P` consecutive panels: `R × P × NR` sums kept in registers
/// for the whole of `k`.
#[inline(always)]
fn tile<const R: usize, const P: usize, const FUSED: bool>(
    rows: &[f64],
    panels: &[f64],
    k: usize,
) -> [[[f64; NR]; P]; R] {
    let mut acc = [[[0.0f64; NR]; P]; R];
    let panel: [&[f64]; P] = std::array::from_fn(|q| &panels[q * k * NR..(q + 1) * k * NR]);
    for (p, av) in rows.chunks_exact(R).enumerate().take(k) {
        let av: &[f64; R] = av.try_into().expect("chunks_exact yields R values");
        for q in 0..P {
            let bv: &[f64; NR] = panel[q][p * NR..(p + 1) * NR]
                .try_into()
                .expect("a panel row holds NR values");
            for r in 0..R {
                for c in 0..NR {
                    let sum = &mut acc[r][q][c];
                    *sum = if FUSED {
                        av[r].mul_add(bv[c], *sum)
                    } else {
                        *sum + av[r] * bv[c]
                    };
                }
            }
        }
    }
    acc
}

#[inline(always)]
fn store<const R: usize, const P: usize>(
    acc: &[[[f64; NR]; P]; R],
    out: &mut [f64],
    n: usize,
    row0: usize,
    q0: usize,
) {
    for (r, panels) in acc.iter().enumerate() {
        for (q, sums) in panels.iter().enumerate() {
            let col0 = (q0 + q) * NR;
            let width = NR.min(n - col0);
            let start = (row0 + r) * n + col0;
            out[start..start + width].copy_from_slice(&sums[..width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 - 1001.0) / 337.0)
            .collect()
    }

    fn transpose(b: &[f64], k: usize, n: usize) -> Vec<f64> {
        let mut t = vec![0.0; k * n];
        for p in 0..k {
            for j in 0..n {
                t[j * k + p] = b[p * n + j];
            }
        }
        t
    }

    /// Every tile shape and ragged edge: rows 1–9 (full tiles plus 0–3 left over), columns
    /// inside one panel, exactly one, across several with a remainder; both kernels, both
    /// layouts of the weights.
    #[test]
    fn matches_the_textbook_product_on_ragged_shapes() {
        for m in 1..=9 {
            for &k in &[1, 3, 17, 64] {
                for &n in &[1, 7, 8, 9, 33, 40] {
                    let a = values(m * k, 1);
                    let b = values(k * n, 2);
                    let want = reference(&a, &b, m, k, n);
                    let packed = Packed::new(&b, k, n, false);
                    let from_t = Packed::new(&transpose(&b, k, n), k, n, true);
                    for got in [
                        multiply(&packed, &a, m),
                        multiply(&from_t, &a, m),
                        multiply_with::<false>(&packed, &a, m),
                    ] {
                        assert_eq!(got.len(), m * n);
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                                "m={m} k={k} n={n}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_gets_the_same_answer_alone_or_in_a_batch() {
        let (k, n) = (50, 21);
        let b = Packed::new(&values(k * n, 3), k, n, false);
        let batch = values(7 * k, 4);
        let together = multiply(&b, &batch, 7);
        for i in 0..7 {
            let alone = multiply(&b, &batch[i * k..(i + 1) * k], 1);
            assert_eq!(alone, together[i * n..(i + 1) * n], "row {i}");
        }
    }

    #[test]
    fn empty_shapes_give_empty_or_zero_products() {
        let b = Packed::new(&[], 0, 3, false);
        assert_eq!(multiply(&b, &[], 2), vec![0.0; 6]);
        let b = Packed::new(&[], 4, 0, false);
        assert!(multiply(&b, &values(8, 0), 2).is_empty());
        assert!(multiply(&Packed::new(&values(12, 0), 4, 3, false), &[], 0).is_empty());
    }
}
