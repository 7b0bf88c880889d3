//! Feeds arbitrary bytes to both native loaders (XGBoost JSON and LightGBM text) and runs
//! any model that loads: no input may panic, abort or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    inferd_native::fuzz_one(data);
});
