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


def photo(width: int, height: int, gps: bool = True) -> bytes:
    image = Image.new("RGB", (width, height), (30, 120, 60))
    exif = Image.Exif()
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.5)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_images_get_resized_variants_with_srcset_and_an_open_graph_picture(
    project: Project,
) -> None:
    project.write_bytes("wrb/groot.jpg", photo(2000, 1000))
    project.write_bytes("wrb/klein.png", png_with_text())  # 8 px: no variants
    project.write(
        "wrb/met-foto.md",
        VALID.replace(
            "track: wrb",
            "track: wrb\nimage: groot.jpg\nimage_alt: Een groen vlak\n"
            "attachments:\n  - {title: Schets, path: klein.png}",
        )
        + "\n![Kaart](groot.jpg)\n\n![Schets](klein.png)\n",
    )
    assert build_at(project).problems == ()
    site = project.root / "outbox" / "site"
    for width in (480, 960, 1600):
        variant = site / "formaten" / str(width) / "wrb" / "groot.jpg"
        with Image.open(variant) as image:
            assert image.size == (width, width // 2)
            assert not image.getexif()  # no GPS in a copy either
    assert not (site / "formaten" / "480" / "wrb" / "klein.png").exists()
    with Image.open(site / "formaten" / "og" / "wrb" / "groot.jpg") as og:
        assert (og.format, og.size) == ("JPEG", (1200, 630))
        assert not og.getexif()
    page = (site / "berichten" / "wrb-met-foto" / "index.html").read_text()
    base = "https://www.bevolkingsdaling.nl/"
    srcset = (
        f"{base}formaten/480/wrb/groot.jpg 480w, {base}formaten/960/wrb/groot.jpg 960w, "
        f"{base}formaten/1600/wrb/groot.jpg 1600w, {base}bestanden/wrb/groot.jpg 2000w"
    )
    # The item's picture and the same image in the body: both sized, both with srcset.
    assert page.count(f'srcset="{srcset}"') == 2
    assert page.count('width="2000" height="1000"') == 2
    assert 'sizes="(max-width: 48rem) calc(100vw - 2rem), 46rem"' in page
    assert f'<meta property="og:image" content="{base}formaten/og/wrb/groot.jpg">' in page
    assert '<meta property="og:image:width" content="1200">' in page
    # The small image: its own size, no smaller copies to choose from.
    assert f'<img alt="Schets" src="{base}bestanden/wrb/klein.png" width="8" height="8">' in page
    listing = (site / "archief" / "index.html").read_text()
    assert f'class="miniatuur" src="{base}formaten/480/wrb/groot.jpg"' in listing


def test_variants_follow_the_image_and_go_when_it_goes(project: Project) -> None:
    item = project.write(
        "wrb/met-foto.md",
        VALID.replace("track: wrb", "track: wrb\nimage: foto.jpg\nimage_alt: Een groen vlak"),
    )
    project.write_bytes("wrb/foto.jpg", photo(1000, 500))
    build_at(project)
    site = project.root / "outbox" / "site"
    assert (site / "formaten/960/wrb/foto.jpg").exists()
    assert not (site / "formaten/1600/wrb/foto.jpg").exists()
    # A wider photo under the same name: a 1600 copy, the page's size follows.
    project.write_bytes("wrb/foto.jpg", photo(1800, 900))
    report = build_at(project, "2026-11-27T13:00")
    assert "site/formaten/1600/wrb/foto.jpg" in report.written
    assert "site/berichten/wrb-met-foto/index.html" in report.written
    assert 'width="1800" height="900"' in (site / "berichten/wrb-met-foto/index.html").read_text()
    # Nothing changed: no copy made again.
    again = build_at(project, "2026-11-27T14:00")
    assert not [p for p in again.written if p.startswith("site/formaten/")]
    # The item withdrawn: its image and every copy are removed.
    item.unlink()
    gone = build_at(project, "2026-11-27T15:00")
    assert {p for p in gone.removed if p.startswith("site/formaten/")} == {
        "site/formaten/480/wrb/foto.jpg",
        "site/formaten/960/wrb/foto.jpg",
        "site/formaten/1600/wrb/foto.jpg",
        "site/formaten/og/wrb/foto.jpg",
    }
    assert not (site / "formaten").exists() or not any((site / "formaten").rglob("*.jpg"))
