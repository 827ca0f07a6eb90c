"""Who is calling and what they may touch: the principal of an authenticated request.

The transport authenticates (transport/auth.py) and checks a route's scope; the data
plane asks the principal about each stream a request names (a key may be limited to the
stream ids that start with its prefix, a tenant) and about resets (admin only), so the
rule is the same for every transport. With authentication disabled there is no
principal (None) and everything is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import Forbidden

SCOPES = ("read", "write", "admin", "metrics")


@dataclass(frozen=True)
class Principal:
    name: str  # a label for logs and quotas, never the key
    scopes: frozenset[str]
    prefix: str = ""  # the stream ids it may touch start with this ("" = all)
    max_streams: int | None = None  # live streams per model (None: the settings default)
    new_streams_per_second: float | None = None  # (None: the settings default)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def owns(self, stream_id: str) -> bool:
        return stream_id.startswith(self.prefix)


def stream_error(principal: Principal | None, stream_id: str, reset: bool) -> Forbidden | None:
    """Why this principal may not step (or reset) this stream, or None if it may."""
    if principal is None:
        return None
    if not principal.owns(stream_id):
        return Forbidden(
            f"stream_id: this key may only touch streams whose id starts with {principal.prefix!r}",
            code="forbidden_stream",
        )
    if reset and not principal.allows("admin"):
        return Forbidden('reset: "reset": true needs a key with the admin scope')
    return None


def check_stream(principal: Principal | None, stream_id: str, reset: bool = False) -> None:
    err = stream_error(principal, stream_id, reset)
    if err is not None:
        raise err


def check_sequence_end(principal: Principal | None, stream_id: str, reset: bool) -> None:
    """A v2 ``sequence_end`` (with ``reset``: and ``sequence_start``) steps then forgets
    the stream: the stream's check, and the admin scope, as DELETE needs."""
    check_stream(principal, stream_id, reset)
    if principal is not None and not principal.allows("admin"):
        raise Forbidden(
            "parameters.sequence_end: ends (forgets) the stream, which needs a key with the "
            "admin scope, as DELETE does"
        )
