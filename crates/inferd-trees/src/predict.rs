//! Evaluating a compiled [`Ensemble`]: walks that interleave several independent lanes
//! (rows of one tree, or trees of one row) so that their memory loads overlap, and the choice
//! between row- and tree-parallelism by batch size.

use crate::layout::{Node, FEATURE_MASK, LEAF, LEAF_COUNT_MASK, MISSING_NEXT};
use crate::spec::Aggregate;
use crate::Ensemble;

/// Lanes walked together. Eight independent dependent-load chains keep a core's load units
/// busy without spilling the lane state out of registers.
const LANES: usize = 8;
/// Rows evaluated against every tree before moving on, so they stay in L1 while the upper
/// levels of each tree are reused across them.
const ROW_BLOCK: usize = 256;
/// Below this many estimated node steps (~1 ns each) a call stays on the calling thread:
/// starting a thread costs tens of microseconds.
const MIN_STEPS_FOR_THREADS: u64 = 400_000;
/// Row-parallelism needs enough rows per thread to fill the lanes of every tree.
const MIN_ROWS_PER_THREAD: usize = 4 * LANES;

/// One step of a walk. Branch-free, and a leaf steps to itself (see `layout::Node`), so
/// walking past a lane's leaf for the remaining steps of its group is harmless. A leaf reads
/// feature 0, which exists whenever a tree has a branch (leaf-only trees take zero steps).
/// `MISSING` is false for ensembles where no node sends NaN to its implicit child: there
/// `x <= thr` alone already sends NaN the right way, and the hot loop is shorter.
#[inline(always)]
fn step<const MISSING: bool>(nodes: &[Node], i: u32, row: &[f32]) -> u32 {
    let n = nodes[i as usize];
    let x = row[(n.feat & FEATURE_MASK) as usize];
    let go_next = if MISSING {
        (x <= n.thr) | ((n.feat & MISSING_NEXT != 0) & x.is_nan())
    } else {
        x <= n.thr
    };
    // A plain `if` may become a branch, which mispredicts on about half the steps of varied
    // rows (measured: twice as slow on a 300-tree forest); ask for a conditional move.
    std::hint::select_unpredictable(go_next, i + 1, n.right)
}

/// Walks one lane to its leaf with an early exit; for the odd lanes that do not fill a group.
#[inline]
fn walk_one<const MISSING: bool>(nodes: &[Node], mut i: u32, row: &[f32]) -> u32 {
    while nodes[i as usize].feat & LEAF == 0 {
        i = step::<MISSING>(nodes, i, row);
    }
    i
}

/// Accumulators for a block of rows: `n_targets` per row, plus "seen" flags for min/max.
struct Acc<'a> {
    vals: &'a mut [f64],
    seen: &'a mut [bool],
    aggregate: Aggregate,
    n_targets: usize,
}

impl Acc<'_> {
    #[inline(always)]
    fn add_leaf(&mut self, e: &Ensemble, row: usize, at: u32) {
        let start = e.leaf_start[at as usize] as usize;
        let count = (e.nodes[at as usize].thr.to_bits() & LEAF_COUNT_MASK) as usize;
        let base = row * self.n_targets;
        for k in start..start + count {
            let t = if e.leaf_targets.is_empty() {
                0
            } else {
                e.leaf_targets[k] as usize
            };
            let v = e.leaf_values[k];
            let slot = &mut self.vals[base + t];
            match self.aggregate {
                Aggregate::Sum | Aggregate::Average => *slot += v,
                Aggregate::Min | Aggregate::Max => {
                    let seen = &mut self.seen[base + t];
                    let better = if self.aggregate == Aggregate::Min {
                        v < *slot
                    } else {
                        v > *slot
                    };
                    if !*seen || better {
                        *slot = v;
                    }
                    *seen = true;
                }
            }
        }
    }
}

/// Accumulates trees `trees` over `rows` into `acc` (not finalised).
fn accumulate(e: &Ensemble, rows: &[f32], n_rows: usize, acc: &mut Acc, trees: (usize, usize)) {
    if e.has_missing {
        accumulate_with::<true>(e, rows, n_rows, acc, trees)
    } else {
        accumulate_with::<false>(e, rows, n_rows, acc, trees)
    }
}

fn accumulate_with<const MISSING: bool>(
    e: &Ensemble,
    rows: &[f32],
    n_rows: usize,
    acc: &mut Acc,
    trees: (usize, usize),
) {
    let nf = e.n_features;
    let row = |r: usize| &rows[r * nf..(r + 1) * nf];
    let trees = &e.trees[trees.0..trees.1];
    if n_rows < LANES {
        // Few rows: interleave trees instead, so even one row overlaps its loads.
        for r in 0..n_rows {
            let x = row(r);
            let mut groups = trees.chunks_exact(LANES);
            for group in &mut groups {
                let mut idx: [u32; LANES] = std::array::from_fn(|l| group[l].start);
                let depth = group.iter().map(|t| t.depth).max().unwrap_or(0);
                for _ in 0..depth {
                    for i in &mut idx {
                        *i = step::<MISSING>(&e.nodes, *i, x);
                    }
                }
                for i in idx {
                    acc.add_leaf(e, r, i);
                }
            }
            for t in groups.remainder() {
                let i = walk_one::<MISSING>(&e.nodes, t.start, x);
                acc.add_leaf(e, r, i);
            }
        }
        return;
    }
    for block in (0..n_rows).step_by(ROW_BLOCK) {
        let end = (block + ROW_BLOCK).min(n_rows);
        for t in trees {
            let mut r = block;
            while r + LANES <= end {
                let xs: [&[f32]; LANES] = std::array::from_fn(|l| row(r + l));
                let mut idx = [t.start; LANES];
                for _ in 0..t.depth {
                    for (i, x) in idx.iter_mut().zip(xs) {
                        *i = step::<MISSING>(&e.nodes, *i, x);
                    }
                }
                for (l, i) in idx.into_iter().enumerate() {
                    acc.add_leaf(e, r + l, i);
                }
                r += LANES;
            }
            for r in r..end {
                let i = walk_one::<MISSING>(&e.nodes, t.start, row(r));
                acc.add_leaf(e, r, i);
            }
        }
    }
}

/// Turns accumulated values into outputs: `base + aggregate`.
fn finalise(e: &Ensemble, vals: &mut [f64], seen: &[bool]) {
    let nt = e.n_targets;
    let n_trees = e.trees.len().max(1) as f64;
    for (k, v) in vals.iter_mut().enumerate() {
        let agg = match e.aggregate {
            Aggregate::Sum => *v,
            Aggregate::Average => *v / n_trees,
            Aggregate::Min | Aggregate::Max => {
                if seen[k] {
                    *v
                } else {
                    0.0
                }
            }
        };
        *v = e.base_values[k % nt] + agg;
    }
}

/// Evaluates rows into `out` on the calling thread.
fn predict_serial(e: &Ensemble, rows: &[f32], out: &mut [f64]) {
    let n_rows = out.len() / e.n_targets;
    out.fill(0.0);
    let mut seen = if e.aggregate.is_additive() {
        Vec::new()
    } else {
        vec![false; out.len()]
    };
    let mut acc = Acc {
        vals: out,
        seen: &mut seen,
        aggregate: e.aggregate,
        n_targets: e.n_targets,
    };
    accumulate(e, rows, n_rows, &mut acc, (0, e.trees.len()));
    finalise(e, out, &seen);
}

pub(crate) fn predict(e: &Ensemble, rows: &[f32], out: &mut [f64], threads: usize) {
    assert!(
        out.len().is_multiple_of(e.n_targets),
        "output holds {} values, not a multiple of {} targets",
        out.len(),
        e.n_targets
    );
    let n_rows = out.len() / e.n_targets;
    assert_eq!(
        rows.len(),
        n_rows * e.n_features,
        "rows do not match the output's row count"
    );
    let steps = e.steps_per_row().saturating_mul(n_rows as u64);
    let threads = threads.min(e.trees.len().max(1));
    if threads <= 1 || n_rows <= 1 || e.n_features == 0 || steps < MIN_STEPS_FOR_THREADS {
        return predict_serial(e, rows, out);
    }
    if n_rows >= threads * MIN_ROWS_PER_THREAD || !e.aggregate.is_additive() {
        // Row-parallel: each thread owns a contiguous slice of rows and of `out`.
        let threads = threads.min(n_rows);
        let per = n_rows.div_ceil(threads);
        std::thread::scope(|s| {
            let row_chunks = rows.chunks(per * e.n_features);
            let out_chunks = out.chunks_mut(per * e.n_targets);
            for (r, o) in row_chunks.zip(out_chunks) {
                s.spawn(move || predict_serial(e, r, o));
            }
        });
        return;
    }
    // Tree-parallel for small batches: each thread sums a share of the trees over all rows,
    // the shares are added (sum and average are order-insensitive up to rounding).
    let per = e.trees.len().div_ceil(threads);
    let partials: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..e.trees.len())
            .step_by(per)
            .map(|first| {
                let last = (first + per).min(e.trees.len());
                s.spawn(move || {
                    let mut vals = vec![0.0; n_rows * e.n_targets];
                    let mut acc = Acc {
                        vals: &mut vals,
                        seen: &mut [],
                        aggregate: e.aggregate,
                        n_targets: e.n_targets,
                    };
                    accumulate(e, rows, n_rows, &mut acc, (first, last));
                    vals
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("tree worker panicked"))
            .collect()
    });
    out.fill(0.0);
    for p in &partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    finalise(e, out, &[]);
}
