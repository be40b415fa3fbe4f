"""Run Pagefind over parts of the search index, at most WIDTH at a time.

search.py starts this file as a process of its own (``python pagefind_parts.py BINARY WIDTH
TIMEOUT DIR...``), so the build goes on rendering pages while the parts are indexed. Each DIR
holds ``paginas.jsonl`` (one ``[path, html]`` per page, written by the build in one go:
thousands of small files would cost it seconds) and receives ``site/`` (those pages),
``uit/`` (the bundle), ``log.txt`` (what Pagefind said) and ``klaar`` (its exit code, or why
it did not run). It runs at a lower priority: the build's own rendering comes first, the
indexing takes the time a core would otherwise be idle. Standard library only: it runs as a
script, outside the package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _pages(folder: Path) -> None:
    site = folder / "site"
    with open(folder / "paginas.jsonl", encoding="utf-8") as pages:
        for line in pages:
            path, html = json.loads(line)
            page = site / path
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(html, encoding="utf-8")


def _start(binary: str, folder: Path) -> subprocess.Popen[bytes] | None:
    try:
        _pages(folder)
    except (OSError, ValueError) as exc:
        (folder / "klaar").write_text(f"pagina's voor Pagefind niet geschreven: {exc}")
        return None
    with open(folder / "log.txt", "wb") as log:
        try:
            return subprocess.Popen(
                [
                    binary,
                    "--site",
                    str(folder / "site"),
                    "--output-path",
                    str(folder / "uit"),
                    "--force-language",
                    "nl",
                    "--silent",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            (folder / "klaar").write_text(f"Pagefind start niet: {exc.strerror or exc}")
            return None


def main(argv: list[str]) -> int:
    binary, width_text, timeout_text, *folders = argv
    width, timeout = max(1, int(width_text)), float(timeout_text)
    pending = [Path(f) for f in folders]
    running: list[tuple[Path, subprocess.Popen[bytes], float]] = []
    while pending or running:
        while pending and len(running) < width:
            folder = pending.pop(0)
            process = _start(binary, folder)
            if process is not None:
                running.append((folder, process, time.monotonic() + timeout))
        time.sleep(0.01)
        still = []
        for folder, process, deadline in running:
            code = process.poll()
            if code is None and time.monotonic() > deadline:
                process.kill()
                process.wait()
                (folder / "klaar").write_text(f"Pagefind stopte niet binnen {timeout:.0f} s")
            elif code is None:
                still.append((folder, process, deadline))
            else:
                (folder / "klaar").write_text(str(code))
        running = still
    return 0


if __name__ == "__main__":
    if hasattr(os, "nice"):
        os.nice(10)  # this process and its Pagefinds only
    sys.exit(main(sys.argv[1:]))
