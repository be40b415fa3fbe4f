"""Where the project scaffold (config, templates, sample content) lives in this installation."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pipeline.config import CONFIG_NAME
from pipeline.errors import UsageError


def scaffold_source() -> Path:
    """The scaffold inside an installed wheel, or the repository root in a source checkout."""
    packaged = Path(str(resources.files("pipeline"))) / "scaffold"
    if (packaged / CONFIG_NAME).is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / CONFIG_NAME).is_file() and (checkout / "content").is_dir():
        return checkout
    raise UsageError("het projectsjabloon ontbreekt in deze installatie van krimppost")
