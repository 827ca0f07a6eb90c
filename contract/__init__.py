"""The artifact contract shared by training, the service and bench (pydantic and numpy only)."""
