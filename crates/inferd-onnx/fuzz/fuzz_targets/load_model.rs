//! Any bytes given to the ONNX loader (and, when they load, one inference) must produce an
//! error or a result, never a panic, a hang or an allocation the file does not pay for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    inferd_onnx::fuzz_one(data);
});
