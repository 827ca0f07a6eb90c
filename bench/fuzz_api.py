"""Schemathesis against a running service: every check, a fixed seed, an admin key.

``python -m bench.fuzz_api --max-examples 150`` starts the service on the default
models (authentication on, a throwaway admin key) and runs ``st run`` against its
/openapi.json (``make fuzz``: more than 1,000 cases). tests/service/ runs a shorter
pass against a test server through ``run_schemathesis``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.servers import REPO, start_service

KEY = "fuzz-admin-key"


def keys_file(directory: Path) -> Path:
    path = directory / "keys"
    path.write_text(f"{hashlib.sha256(KEY.encode()).hexdigest()} scopes=admin name=fuzz\n")
    return path


def run_schemathesis(base_url: str, max_examples: int, seed: int = 1) -> tuple[int, int, str]:
    """(exit status, test cases generated, output) of one ``st run``."""
    st = Path(sys.executable).with_name("st")
    out = subprocess.run(
        [
            str(st),
            "--config-file",
            str(REPO / "schemathesis.toml"),
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--header",
            f"Authorization: Bearer {KEY}",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1800,
    )
    found = re.search(r"(\d+) generated", out.stdout)
    return out.returncode, int(found.group(1)) if found else 0, out.stdout + out.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--max-examples", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"auth_disabled": "false", "api_keys_file": str(keys_file(Path(tmp)))}
        with start_service(args.models_dir, Path(tmp), **settings) as server:
            status, cases, output = run_schemathesis(
                f"http://127.0.0.1:{server.port}", args.max_examples, args.seed
            )
    print(output)
    print(f"schemathesis: {cases} test cases, exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
