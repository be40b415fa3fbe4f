"""Published images carry no EXIF (issue 18): a JPEG with GPS tags, an orientation and a
camera serial is published without any of it, upright; a PNG loses its text chunks; a file
that only pretends to be an image is copied unchanged."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from conftest import VALID, Project, build_at

GPS_IFD = 0x8825


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0110] = "Camera met serienummer"  # Model
    exif[0xA431] = "SN-123456"  # BodySerialNumber
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    exif[GPS_IFD] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.5)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_with_text() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Fotograaf met adres")
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_no_published_image_carries_exif_gps(project: Project) -> None:
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the fixture is real
    project.write_bytes("wrb/foto.jpg", original)
    project.write_bytes("wrb/schets.png", png_with_text())
    project.write_bytes("wrb/nep.jpg", b"geen afbeelding")
    project.write(
        "wrb/met-foto.md",
        VALID.replace("track: wrb", "track: wrb\nimage: foto.jpg\nimage_alt: Een rode rechthoek")
        + "\n![Schets](schets.png)\n",
    )
    project.write(
        "wrb/bijlage.md",
        VALID.replace(
            "track: wrb",
            "track: wrb\nattachments:\n  - {title: Nep, path: nep.jpg}\n"
            "  - {title: Schets, path: schets.png}",
        ),
    )
    assert build_at(project).problems == ()
    site = project.root / "outbox" / "site" / "bestanden" / "wrb"
    published = (site / "foto.jpg").read_bytes()
    assert b"Exif" not in published and b"SN-123456" not in published
    with Image.open(io.BytesIO(published)) as image:
        assert image.format == "JPEG"
        assert not image.getexif()
        assert image.size == (20, 40)  # turned upright before the orientation tag went
    png = (site / "schets.png").read_bytes()
    assert b"Fotograaf met adres" not in png
    assert Image.open(io.BytesIO(png)).size == (8, 8)
    assert (site / "nep.jpg").read_bytes() == b"geen afbeelding"
    # Incremental: nothing changed, nothing rewritten.
    again = build_at(project, "2026-11-27T13:00")
    assert not [p for p in again.written if p.startswith("site/bestanden/")]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, on open
def test_an_image_of_too_many_pixels_is_copied_without_being_decoded() -> None:
    """A decompression bomb (tiny file, 144 million pixels) costs neither time nor memory."""
    import time

    from pipeline.render import images

    out = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(out, "PNG")
    bomb = out.getvalue()
    assert len(bomb) < 200_000
    started = time.monotonic()
    assert images.stripped(bomb, "kaart.png") is bomb
    assert time.monotonic() - started < 1
