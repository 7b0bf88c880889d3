//! Feeds arbitrary bytes to the joblib/pickle reader and runs any model that loads: no input
//! may panic, abort, hang or allocate past the reader's limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    inferd_sklearn::fuzz_one(data);
});
