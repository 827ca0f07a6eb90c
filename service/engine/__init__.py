"""The engine: models, stream semantics, batching, ONNX Runtime, state."""
