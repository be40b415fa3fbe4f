"""`krimppost init DIR`: scaffold a working project from the files shipped in the package."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from pipeline.config import CONFIG_NAME
from pipeline.errors import UsageError

SCAFFOLD_PARTS = (CONFIG_NAME, "content", "templates")


def scaffold_source() -> Path:
    """The scaffold inside an installed wheel, or the repository root in a source checkout."""
    packaged = Path(str(resources.files("pipeline"))) / "scaffold"
    if (packaged / CONFIG_NAME).is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / CONFIG_NAME).is_file() and (checkout / "content").is_dir():
        return checkout
    raise UsageError("het projectsjabloon ontbreekt in deze installatie van krimppost")


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
