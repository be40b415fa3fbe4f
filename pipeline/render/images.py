"""Published copies of images carry no metadata: EXIF (with GPS positions, camera serial
numbers, the time a photo was taken), XMP and text chunks are stripped as the file is copied
into the site. The pixels and the colour profile stay.

A file Pillow cannot read as the image its name says is copied as it is: the build does not
judge images, and a broken one shows as broken in any browser.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

from pipeline.content.confine import read_confined
from pipeline.render.output import Output, key_of

# Raise when stripping changes what is written, so every copy is made again.
STRIP_VERSION = 1
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
# Larger images are copied as they are rather than decoded (a decompression bomb would
# cost gigabytes of memory); no real photo of a site comes near.
MAX_PIXELS = 80_000_000


def is_image(rel: str) -> bool:
    return rel.lower().endswith(tuple(FORMATS))


def stripped(data: bytes, rel: str) -> bytes:
    """The image `data` (of file `rel`) without its metadata; `data` itself when it is not
    an image Pillow can read in the format its name says."""
    from PIL import Image, ImageOps

    kind = FORMATS[rel.lower()[rel.rfind(".") :]]
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != kind or image.width * image.height > MAX_PIXELS:
                return data
            image.load()
            # The orientation lives in EXIF: applied to the pixels before EXIF goes.
            upright = ImageOps.exif_transpose(image) or image
            options: dict[str, object] = {}
            if profile := image.info.get("icc_profile"):
                options["icc_profile"] = profile
            if kind == "JPEG":
                options.update(quality=90, optimize=True)
                if upright.mode not in ("RGB", "L", "CMYK"):
                    upright = upright.convert("RGB")
            elif kind == "WEBP":
                options.update(quality=90)
            out = io.BytesIO()
            upright.save(out, kind, **options)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return data


def _copy(content: Path, rel: str) -> bytes:
    data = read_confined(content, rel, f"content/{rel}", "content/")
    return stripped(data, rel) if is_image(rel) else data


def asset_output(
    content: Path, rel: str, st: os.stat_result | None, key: str | None = None
) -> Output:
    """The copy of content file `rel` in the site (`key`: the one it has, for a file that
    cannot be read now and keeps its copy)."""
    if key is None:
        assert st is not None
        version = ("strip", STRIP_VERSION) if is_image(rel) else 0
        key = key_of("asset", rel, st.st_size, st.st_mtime_ns, version)
    return Output(f"site/bestanden/{rel}", key, functools.partial(_copy, content, rel), 0)
