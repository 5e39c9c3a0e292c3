"""ortserve: an online inference server for ONNX models (KServe V2 over gRPC and HTTP)."""

__version__ = "0.1.0"
