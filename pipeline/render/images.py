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
from typing import TYPE_CHECKING

from pipeline.content.confine import read_confined
from pipeline.render.output import Output, key_of

if TYPE_CHECKING:
    from PIL import Image

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
            return _saved(upright, kind, 90, image.info.get("icc_profile"))
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return data


def _saved(image: Image.Image, kind: str, quality: int, profile: bytes | None) -> bytes:
    """`image` encoded as `kind` with nothing but its pixels and colour profile."""
    options: dict[str, object] = {"icc_profile": profile} if profile else {}
    if kind == "JPEG":
        options.update(quality=quality, optimize=True)
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
    elif kind == "WEBP":
        options.update(quality=quality)
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


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


# Resized copies: the widths a browser picks from (`srcset`), each made only when the
# original is wider; and the 1200×630 picture link previews show (Open Graph).
VARIANT_VERSION = 1
VARIANT_WIDTHS = (480, 960, 1600)
OG_SIZE = (1200, 630)
VARIANTS = "formaten"  # site folder of the resized copies, beside bestanden/


@functools.lru_cache(maxsize=4096)
def _size_of(path: Path, size: int, mtime_ns: int) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            width, height = image.size
            # EXIF orientations 5-8 turn the picture a quarter: the copy is made upright.
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
            return width, height
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None


def size_of(content: Path, rel: str, st: os.stat_result) -> tuple[int, int] | None:
    """Width and height of image `rel` as published (upright), None when it is no image
    Pillow reads (it is then copied as it is and gets no variants)."""
    if not is_image(rel):
        return None
    return _size_of(content / rel, st.st_size, st.st_mtime_ns)


def variant_widths(size: tuple[int, int]) -> list[int]:
    return [w for w in VARIANT_WIDTHS if w < size[0]]


def variant_path(rel: str, width: int) -> str:
    return f"{VARIANTS}/{width}/{rel}"


def og_path(rel: str) -> str:
    return f"{VARIANTS}/og/{rel.rsplit('.', 1)[0]}.jpg"


def _variant(content: Path, rel: str, width: int | None) -> bytes:
    """Image `rel` `width` pixels wide (None: cropped to OG_SIZE as JPEG), upright and
    without metadata."""
    from PIL import Image, ImageOps

    data = read_confined(content, rel, f"content/{rel}", "content/")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        upright = ImageOps.exif_transpose(image) or image
        if width is None:
            fitted = ImageOps.fit(upright.convert("RGB"), OG_SIZE, Image.Resampling.LANCZOS)
            return _saved(fitted, "JPEG", 85, None)
        height = max(1, round(upright.height * width / upright.width))
        resized = upright.resize((width, height), Image.Resampling.LANCZOS)
        kind = FORMATS[rel.lower()[rel.rfind(".") :]]
        return _saved(resized, kind, 85, image.info.get("icc_profile"))


def variant_outputs(content: Path, rel: str, st: os.stat_result, og: bool) -> list[Output]:
    """The resized copies of image `rel` (and its Open Graph picture when `og`)."""
    size = size_of(content, rel, st)
    if size is None:
        return []
    base = ("variant", VARIANT_VERSION, rel, st.st_size, st.st_mtime_ns)
    out = [
        Output(
            f"site/{variant_path(rel, w)}",
            key_of(*base, w),
            functools.partial(_variant, content, rel, w),
            0,
        )
        for w in variant_widths(size)
    ]
    if og:
        out.append(
            Output(
                f"site/{og_path(rel)}",
                key_of(*base, "og"),
                functools.partial(_variant, content, rel, None),
                0,
            )
        )
    return out
