"""Transports: HTTP fast path, FastAPI routes, WebSocket; each only translates."""
