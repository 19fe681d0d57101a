"""Regenerate the pair-model validation runs (docs/validation.md, "The pair model").

Usage (from the repository root)::

    .venv/bin/python docs/validation/pairs/regenerate.py [MODEL ...] [--reuse-exact] [--tables-only]

A thin wrapper: ``docs/validation/regenerate.py --models pairs/MODEL,...`` (default: every
``pairs/`` run of its ``RUNS``), which saves ``docs/validation/pairs/<model>/`` and rewrites
their tables in docs/validation.md. The exact parts are reused (from an earlier run or from
``docs/validation/<model>/validation.nc``) only with ``--reuse-exact``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    regenerate = runpy.run_path(str(Path(__file__).resolve().parent.parent / "regenerate.py"),
                                run_name="validation_regenerate")
    flags = [a for a in sys.argv[1:] if a.startswith("-")]
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    runs = [f"pairs/{n}" for n in names] or [r for r in regenerate["RUNS"]
                                             if r.startswith("pairs/")]
    sys.exit(regenerate["main"](["--models", ",".join(runs), *flags]))
