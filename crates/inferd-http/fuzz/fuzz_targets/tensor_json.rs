//! Fuzzes `inferd_http::fuzzing::tensor_json`: any bytes, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = inferd_http::fuzzing::tensor_json(data);
});
