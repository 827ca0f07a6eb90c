"""The wire format: request checks, answer bodies, timestamps (no engine, no transport)."""
