//! A pickle reader that is a data parser, never an interpreter of code: opcodes build plain
//! values (see [`value`]), names resolve only against [`globals`]' allowlist, and every size
//! the file claims is checked against [`Limits`] before anything is allocated for it.

pub mod globals;
mod numpy;
pub mod opcodes;
pub mod value;
pub(crate) mod vm;

pub use vm::{load, Reader};

/// Bounds on what one file may make the reader allocate. Every one is checked before the
/// allocation it guards, so a hostile file fails fast instead of exhausting memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file after decompression.
    pub max_decompressed_bytes: usize,
    /// Most values (every number, string, container, array) one file may create.
    pub max_values: usize,
    /// Most memo entries.
    pub max_memo: usize,
    /// Deepest nesting of containers, and of MARKs.
    pub max_depth: usize,
    /// Most entries on the pickle stack.
    pub max_stack: usize,
    /// Largest single array, in bytes.
    pub max_array_bytes: usize,
    /// Most bytes held by strings, byte strings and arrays together.
    pub max_total_bytes: usize,
    /// How deep joblib may nest a pickle inside a pickle (object arrays).
    pub max_nested_pickles: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 1 << 30,
            max_values: 1 << 22,
            max_memo: 1 << 22,
            max_depth: 200,
            max_stack: 1 << 20,
            max_array_bytes: 1 << 30,
            max_total_bytes: 3 << 29,
            max_nested_pickles: 4,
        }
    }
}
