//! The compiled, flat form of an ensemble: one array of 12-byte nodes for all trees, leaf
//! values kept apart so that the nodes a walk touches stay dense in cache.

/// A compiled node. Branch: a row goes to the node right after this one (its implicit child)
/// when `x[feature] <= thr`, or when `x` is NaN and [`MISSING_NEXT`] is set; otherwise to
/// `right`, an index relative to the tree's first node. Leaf ([`LEAF`] set): `right` is the
/// offset of its values in the leaf arrays and `thr`'s bits hold how many values it has.
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

/// One tree's slice of the node array and the most steps a walk through it can take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tree {
    pub start: u32,
    pub end: u32,
    pub depth: u32,
}
