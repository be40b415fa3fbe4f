"""`krimppost init DIR`: scaffold a working project from the files shipped in the package."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.config import CONFIG_NAME
from pipeline.errors import UsageError
from pipeline.scaffold import scaffold_source

SCAFFOLD_PARTS = (CONFIG_NAME, "content", "templates")


def init(target: Path) -> list[str]:
    """Copy config, templates and sample content into target; refuse to overwrite."""
    source = scaffold_source()
    existing = [part for part in SCAFFOLD_PARTS if (target / part).exists()]
    if existing:
        raise UsageError(
            f"{target}: bevat al {', '.join(existing)}; init overschrijft geen bestaand project"
        )
    target.mkdir(parents=True, exist_ok=True)
    created = []
    for part in SCAFFOLD_PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        elif src.is_file():
            shutil.copy2(src, target / part)
        created.append(part)
    return created
