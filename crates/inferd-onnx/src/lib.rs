//! ONNX runtime (being built).
