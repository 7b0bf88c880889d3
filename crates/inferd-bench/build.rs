//! Compiles the client side of the Open Inference Protocol gRPC service with protox (pure Rust,
//! no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/inference_client.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_build::configure()
        .build_server(false)
        .build_client(true)
        // Request tensors are pre-encoded once and shared between calls without copying.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
