"""Scripts run in a fresh interpreter, for what a test process that has already imported
everything cannot show: what importing does, from a clean start."""

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from tests.conftest import REPO


def run_json(
    script: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Any:
    """Run ``python -c script *args`` in the repository, with ``env`` added to this
    process's environment. It must exit 0; its last line of output is read as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**os.environ, **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])
