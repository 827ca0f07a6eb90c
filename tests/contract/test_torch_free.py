"""The serving side never imports torch: contract/ and the service load without it."""

from __future__ import annotations

import subprocess
import sys


def test_contract_and_service_import_without_torch() -> None:
    code = (
        "import sys, contract.manifest, contract.timefeatures, service.app, "
        "service.engine.artifacts, service.engine.calendar; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
