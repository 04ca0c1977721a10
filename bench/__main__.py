"""Run every benchmark in this folder, one subprocess each: ``python -m bench [name ...]``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Modules the benchmarks use, not benchmarks themselves.
_TOOLS = {"loadgen"}


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(p.stem for p in here.glob("*.py")
                           if not p.stem.startswith("_") and p.stem not in _TOOLS)
    failed = []
    for name in names:
        print(f"\n=== bench/{name}.py", flush=True)
        result = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=here.parent)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
