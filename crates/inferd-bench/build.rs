//! Compiles the Open Inference Protocol gRPC service (the client, and a server the tests use)
//! with protox (pure Rust, no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/inference_client.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_build::configure()
        // The server side is compiled only so that the tests can stand up a fake server.
        .build_server(true)
        .build_client(true)
        // Request tensors are pre-encoded once and shared between calls without copying.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
