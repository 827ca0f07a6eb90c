"""API keys: read from a file of hashes, reloaded on change or SIGHUP, looked up per call.

The file holds no secret: one line per key, the sha256 of the key in hex, then its
fields (docs/api.md "Authentication")::

    # comment
    9f86d081...0f00a08  scopes=read,write  prefix=acme:  name=acme  max_streams=1000

A client sends the key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the
key is hashed (after a length check) and the hash looked up, so the lookup does not
depend on how much of a secret a guess matched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

from service.errors import Forbidden, Unauthorized
from service.protocol.access import SCOPES, Principal

log = logging.getLogger(__name__)

MAX_KEY_CHARS = 256
_HEX = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"scopes", "prefix", "name", "max_streams", "new_streams_per_second"}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(text: str, source: str = "keys file") -> dict[str, Principal]:
    """Every key of a keys file by its hash; ValueError names the line and the reason."""
    keys: dict[str, Principal] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        digest, *rest = line.split()
        digest = digest.lower().removeprefix("sha256:")
        where = f"{source} line {n}"
        if not _HEX.fullmatch(digest):
            raise ValueError(f"{where}: the first field must be a sha256 hex digest")
        fields: dict[str, str] = {}
        for part in rest:
            name, sep, value = part.partition("=")
            if not sep or name not in _FIELDS:
                raise ValueError(f"{where}: {part[:40]!r} is not one of {sorted(_FIELDS)}=...")
            fields[name] = value
        scopes = frozenset(s for s in fields.get("scopes", "").split(",") if s)
        if not scopes or not scopes <= set(SCOPES):
            raise ValueError(f"{where}: scopes must be a comma list of {', '.join(SCOPES)}")
        try:
            max_streams = int(fields["max_streams"]) if "max_streams" in fields else None
            rate = fields.get("new_streams_per_second")
            new_rate = float(rate) if rate is not None else None
        except ValueError:
            raise ValueError(f"{where}: max_streams, new_streams_per_second: not numbers") from None
        if (max_streams is not None and max_streams < 1) or (
            new_rate is not None and not new_rate > 0
        ):
            raise ValueError(f"{where}: max_streams and new_streams_per_second must be > 0")
        if digest in keys:
            raise ValueError(f"{where}: the same key appears twice")
        keys[digest] = Principal(
            name=fields.get("name", digest[:8]),
            scopes=scopes,
            prefix=fields.get("prefix", ""),
            max_streams=max_streams,
            new_streams_per_second=new_rate,
        )
    return keys


class KeyStore:
    """The keys of one app. ``lookup`` is called per request; it re-reads the file when
    its modification time or size changed (checked at most every ``check_every``
    seconds) or when ``reload`` is called (SIGHUP)."""

    def __init__(self, path: Path | None, check_every: float = 2.0) -> None:
        self.path = path
        self.check_every = check_every
        self.keys: dict[str, Principal] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        if path is not None:
            self.reload(strict=True)  # a bad file at start is a start error

    def reload(self, strict: bool = False) -> None:
        """Read the file again; a broken file keeps the keys we had (and is logged)."""
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
            keys = parse_keys(self.path.read_text(), str(self.path))
        except (OSError, ValueError) as exc:
            if strict:
                raise ValueError(f"api_keys_file: {exc}") from None
            log.error("keys file not reloaded, keeping %d keys: %s", len(self.keys), exc)
            return
        self._stamp = (st.st_mtime_ns, st.st_size)
        if keys.keys() != self.keys.keys() or strict:
            log.info("loaded %d API keys from %s", len(keys), self.path)
        self.keys = keys

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.check_every or self.path is None:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return  # being replaced; the next check sees the new file
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self.reload()

    def lookup(self, key: str) -> Principal | None:
        self._maybe_reload()
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        return self.keys.get(hash_key(key))


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (lower-case
    header names: HTTP headers and gRPC metadata alike)."""
    value = headers.get(b"authorization")
    if value is not None:
        scheme, _, token = value.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip().decode("latin-1")
    value = headers.get(b"x-api-key")
    if value is not None and value.strip():
        return value.strip().decode("latin-1")
    return None


def authenticate(keys: KeyStore, needed: str, headers: dict[bytes, bytes]) -> Principal:
    """The caller holding the ``needed`` scope; 401 without a known key, 403 without
    the scope. HTTP (the guard) and gRPC (its metadata) both call this."""
    key = presented_key(headers)
    if key is None:
        raise Unauthorized(
            "Authorization: an API key is needed (Authorization: Bearer <key> or X-API-Key: <key>)",
            code="missing_key",
        )
    principal = keys.lookup(key)
    if principal is None:
        raise Unauthorized("Authorization: unknown API key", code="invalid_key")
    if not principal.allows(needed):
        raise Forbidden(f"Authorization: this key lacks the {needed} scope", code="forbidden_scope")
    return principal
