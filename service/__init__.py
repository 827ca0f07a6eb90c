"""Stateful LSTM forecasting service (ONNX Runtime behind async FastAPI)."""
