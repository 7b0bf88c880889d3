//! Unit tests of proto ↔ tensor conversion.
use super::*;
