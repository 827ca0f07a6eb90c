"""The model engine: artifacts, ONNX Runtime sessions, stream state and step arithmetic."""
