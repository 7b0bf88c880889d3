//! Fuzzes `inferd_http::fuzzing::predict_body`: any bytes, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = inferd_http::fuzzing::predict_body(data);
});
