"""The wire format: what a request may carry and how answers are written."""
