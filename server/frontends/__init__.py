"""The gRPC and HTTP front ends; the only code that knows grpc and starlette."""
