"""Load tests for ortserve: served throughput and latency beside raw ONNX Runtime and the
cheapest possible V2 servers ("floors"), measured in one run. See benchmarks/README.md."""
