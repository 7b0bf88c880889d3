//! The compiled, flat form of an ensemble: one array of 12-byte nodes for all trees, leaf
//! values kept apart so that the nodes a walk touches stay dense in cache.

/// A compiled node. Branch: a row goes to the node right after this one (its implicit child)
/// when `x[feature] <= thr`, or when `x` is NaN and [`MISSING_NEXT`] is set; otherwise to
/// `right`, an index into the ensemble's node array. Leaf ([`LEAF`] set): feature 0, `thr` a
/// NaN whose payload is the leaf's value count, and `right` its own index, so that a step
/// from a leaf stays there; its values' offset is in `Ensemble::leaf_start`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    pub thr: f32,
    /// Feature index in the low 24 bits, flags above.
    pub feat: u32,
    pub right: u32,
}

pub(crate) const FEATURE_MASK: u32 = (1 << 24) - 1;
pub(crate) const MISSING_NEXT: u32 = 1 << 30;
pub(crate) const LEAF: u32 = 1 << 31;
/// Quiet-NaN bits of a leaf's threshold; the low 22 bits hold its value count.
pub(crate) const LEAF_NAN: u32 = 0x7FC0_0000;
pub(crate) const LEAF_COUNT_MASK: u32 = (1 << 22) - 1;

/// One tree's slice of the node array and the most steps a walk through it can take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tree {
    pub start: u32,
    pub end: u32,
    pub depth: u32,
}
