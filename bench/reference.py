"""Reference: Python-Markdown alone, one core, on the bodies of every item under ROOT/content.

    python bench/reference.py ROOT

Same extensions and configs as krimppost, one instance reused with `.reset()`. Files are
read and front matter is stripped before the clock starts. Prints one JSON line:
{"items", "seconds" (conversion loop only), "maxrss_mb"}.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import markdown

from pipeline.content.body import MARKDOWN_CONFIGS, MARKDOWN_EXTENSIONS


def body(text: str) -> str:
    """Everything after the closing `---` of the front matter."""
    lines = text.split("\n")
    end = next(i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "..."))
    return "\n".join(lines[end + 1 :])


def main() -> None:
    root = Path(sys.argv[1])
    bodies = [body(p.read_text(encoding="utf-8")) for p in sorted((root / "content").rglob("*.md"))]
    md = markdown.Markdown(
        extensions=list(MARKDOWN_EXTENSIONS),
        extension_configs=MARKDOWN_CONFIGS,
        output_format="html",
    )
    start = time.perf_counter()
    for text in bodies:
        md.reset()
        md.convert(text)
    seconds = time.perf_counter() - start
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"items": len(bodies), "seconds": seconds, "maxrss_mb": maxrss}))


if __name__ == "__main__":
    main()
