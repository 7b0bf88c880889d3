//! Compiles `proto/open_inference_grpc.proto` with protox (pure Rust, no system `protoc`) and
//! generates the tonic server and client, plus the descriptor set that reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/open_inference_grpc.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("inference_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        // Tensor bytes arrive as `Bytes` slices of the request buffer instead of fresh copies.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
