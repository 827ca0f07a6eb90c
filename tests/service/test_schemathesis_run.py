"""Schemathesis, every check, against a real server with authentication on.

A few hundred generated cases here; ``make fuzz`` runs more than 1,000 against the
default models. Any server error, schema violation, undocumented status or header,
accepted invalid body or ignored authentication fails the run (exit status 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from svc_helpers import LiveServer

from bench.fuzz_api import keys_file, run_schemathesis


def test_schemathesis_finds_nothing(serve: Callable[..., LiveServer], tmp_path: Path) -> None:
    server = serve(auth_disabled=False, api_keys_file=keys_file(tmp_path))
    status, cases, output = run_schemathesis(server.url, max_examples=15)
    assert status == 0, output[-4000:]
    assert cases >= 300, output[-2000:]
