"""Run `python -m MODULE ARGS...` in this process, then report its peak RSS to a JSON file.

    python bench/rusage.py OUT.json MODULE [ARGS...]

`main_mb` is this process's own peak; `children_mb` is the largest peak among the child
processes it waited for (krimppost's pool workers), as getrusage(RUSAGE_CHILDREN) keeps the
maximum, not the sum. Running in-process (not under a wrapper parent) keeps the two apart.
"""

from __future__ import annotations

import json
import resource
import runpy
import sys
from pathlib import Path


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        usage = {
            name: resource.getrusage(who).ru_maxrss / 1024
            for name, who in (
                ("main_mb", resource.RUSAGE_SELF),
                ("children_mb", resource.RUSAGE_CHILDREN),
            )
        }
        Path(out).write_text(json.dumps(usage) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
