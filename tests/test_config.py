"""config.toml validation: every problem with its line, all in one run, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from pipeline.config import file_problems, load_config, newsletter_problems, parse_config
from pipeline.errors import ConfigError

BASE = (REPO / "config.toml").read_text(encoding="utf-8")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("/tmp/x"))
    assert info.value.exit_code == 2
    return [str(p) for p in info.value.problems]


def by_line(lines: list[str]) -> list[str]:
    return sorted(lines, key=lambda s: (int(s.split(":")[1]), s))


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_repository_config_is_valid() -> None:
    config = load_config(REPO)
    assert list(config.tracks) == ["wrb", "woningmarkt", "energietransitie"]
    assert config.site.base_url == "https://www.bevolkingsdaling.nl/"
    assert config.site.language == "nl-NL"
    assert config.feeds.length == 50
    assert config.tracks["wrb"].label == "Wetenschappelijke Reflectiegroep"


def test_unknown_key_with_suggestion() -> None:
    text = BASE.replace('language = "nl-NL"', 'langauge = "nl-NL"')
    assert errors(text) == [
        f"config.toml:{line_of(text, 'langauge')}: onbekende optie 'langauge' in [site]; "
        "bedoelde je 'language'?"
    ]


def test_wrong_type_and_bad_values_all_reported() -> None:
    text = (
        BASE.replace("length = 50", 'length = "veel"')
        .replace('timezone = "Europe/Amsterdam"', 'timezone = "Europe/Amsterdamm"')
        .replace(
            'base_url = "https://www.bevolkingsdaling.nl/"', 'base_url = "www.bevolkingsdaling.nl"'
        )
        .replace("workers = 0 ", "workers = true ")
    )
    assert errors(text) == by_line(
        [
            f"config.toml:{line_of(text, 'length =')}: 'length' in [feeds] moet een geheel getal "
            "zijn, niet tekst",
            f"config.toml:{line_of(text, 'timezone =')}: 'timezone' in [site] onbekende tijdzone "
            "'Europe/Amsterdamm' (bijvoorbeeld 'Europe/Amsterdam')",
            f"config.toml:{line_of(text, 'base_url =')}: 'base_url' in [site] moet een "
            "http(s)-URL zijn, niet 'www.bevolkingsdaling.nl'",
            f"config.toml:{line_of(text, 'workers =')}: 'workers' in [build] moet een geheel getal "
            "zijn, niet een boolean (true/false)",
        ]
    )


def test_missing_required_option_points_at_its_section() -> None:
    text = BASE.replace(
        'organisation = "Ministerie van Binnenlandse Zaken en Koninkrijksrelaties"\n', ""
    )
    assert errors(text) == [
        f"config.toml:{line_of(text, '[site]')}: verplichte optie 'organisation' ontbreekt in [site]"
    ]


def test_unknown_section_and_track_problems() -> None:
    text = BASE + '\n[sociaal]\nx = 1\n\n[tracks.Fout]\nlabel = "x"\n'
    assert errors(text) == by_line(
        [
            f"config.toml:{line_of(text, '[sociaal]')}: onbekende sectie [sociaal]"
            "; bedoelde je 'social'?",
            f"config.toml:{line_of(text, '[tracks.Fout]')}: ongeldige traject-id 'Fout': kleine "
            "letters, cijfers en '-'",
            f"config.toml:{line_of(text, '[tracks.Fout]')}: verplichte optie 'description' "
            "ontbreekt in [tracks.Fout]",
        ]
    )


def test_no_tracks() -> None:
    text = BASE.split("[tracks.wrb]")[0] + "[feeds]\nlength = 5\n"
    assert errors(text) == [
        "config.toml:1: er moet minstens één traject zijn, bijvoorbeeld [tracks.wrb]"
    ]


def test_toml_syntax_error_line() -> None:
    text = BASE.replace('language = "nl-NL"', 'language = "nl-NL')
    assert errors(text) == [
        f"config.toml:{line_of(text, 'language =')}: ongeldige TOML: Illegal character '\\n'"
    ]


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "geen config.toml gevonden" in str(info.value)


def test_language_other_than_dutch_rejected() -> None:
    text = BASE.replace('language = "nl-NL"', 'language = "en-GB"')
    assert errors(text)[0].endswith(
        "'language' in [site] alleen Nederlands wordt ondersteund ('nl-NL'), niet 'en-GB'"
    )


def without(text: str, *keys: str) -> str:
    """The config with the lines that set these keys removed (`"[podcast] title"`)."""
    lines, section = [], ""
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            section = line.strip()
        key = line.split("=", 1)[0].strip()
        if f"{section} {key}" not in keys:
            lines.append(line)
    return "".join(lines)


def test_fallbacks_are_resolved_once_after_validation() -> None:
    text = without(
        BASE,
        "[podcast] title",
        "[podcast] description",
        "[podcast] author",
        "[podcast] email",
        "[newsletter] from_name",
        "[newsletter] reply_to",
        "[newsletter] list_id",
        "[newsletter] message_id_domain",
        "[newsletter] unsubscribe_url",
        "[accessibility] contact_email",
    )
    config = parse_config(text, Path("/tmp/x"))
    site = config.site
    assert (config.podcast.title, config.podcast.description) == (site.title, site.description)
    assert (config.podcast.author, config.podcast.email) == (site.organisation, site.email)
    nl = config.newsletter
    assert (nl.from_name, nl.reply_to) == (site.title, site.email)
    # Never empty: `make_msgid(domain="")` gave serve's confirmation mail `<…@>` (issue 14).
    assert nl.message_id_domain == "www.bevolkingsdaling.nl"
    assert nl.list_id == "nieuwsbrief.www.bevolkingsdaling.nl"
    assert nl.unsubscribe_url == "https://www.bevolkingsdaling.nl/afmelden/"
    assert config.accessibility.contact_email == site.email
    # Empty in the repository's config: the comments there name the fallback.
    assert config.smtp.envelope_from == nl.from_address
    assert config.serve.public_url == site.base_url


def test_a_set_option_is_not_replaced_by_its_fallback() -> None:
    config = load_config(REPO)
    assert config.newsletter.message_id_domain == "bevolkingsdaling.nl"
    assert config.newsletter.from_name == "Programma Bevolkingsdaling"
    assert config.podcast.title == "Podcast Bevolkingsdaling"
    text = BASE.replace('envelope_from = ""', 'envelope_from = "bounces@bevolkingsdaling.nl"')
    assert parse_config(text, Path("/tmp/x")).smtp.envelope_from == "bounces@bevolkingsdaling.nl"


def test_unsubscribe_url_must_be_http_and_ends_with_a_slash() -> None:
    url = 'unsubscribe_url = "https://www.bevolkingsdaling.nl/afmelden/"'
    text = BASE.replace(url, 'unsubscribe_url = "https://www.bevolkingsdaling.nl/uit"')
    assert parse_config(text, Path("/tmp/x")).newsletter.unsubscribe_url.endswith("/uit/")
    text = BASE.replace(url, 'unsubscribe_url = "afmelden/"')
    assert errors(text) == [
        f"config.toml:{line_of(text, 'unsubscribe_url =')}: 'unsubscribe_url' in [newsletter] "
        "moet een http(s)-URL zijn, niet 'afmelden/'"
    ]


def test_a_float_option_written_as_an_integer_is_a_float() -> None:
    smtp = load_config(REPO).smtp  # timeout = 30, rate_per_second = 50
    assert (smtp.timeout, smtp.rate_per_second) == (30.0, 50.0)
    assert isinstance(smtp.timeout, float) and isinstance(smtp.rate_per_second, float)


def test_missing_podcast_image_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "content").mkdir()
    (tmp_path / "config.toml").write_text(BASE, encoding="utf-8")
    config = load_config(tmp_path)
    assert [str(p) for p in file_problems(config)] == [
        f"config.toml:{line_of(BASE, 'image =')}: [podcast] image: bestand "
        "'afbeeldingen/podcast-omslag.png' niet gevonden in content/"
    ]
    assert config.line("podcast", "image") == line_of(BASE, "image =")


def test_missing_newsletter_option_points_at_its_section() -> None:
    text = BASE.replace('from_address = "nieuwsbrief@bevolkingsdaling.nl"\n', "")
    config = parse_config(text, Path("/tmp/x"))
    assert [str(p) for p in newsletter_problems(config)] == [
        f"config.toml:{line_of(text, '[newsletter]')}: [newsletter] from_address ontbreekt; "
        "nodig om een nieuwsbrief te maken"
    ]


def test_every_option_is_declared_once_as_a_field_of_its_section() -> None:
    from dataclasses import fields

    from pipeline.config import SECTION_TYPES, SECTIONS, Config

    names = {f.name for f in fields(Config)}
    for section, cls in SECTION_TYPES.items():
        assert section in names
        assert list(SECTIONS[section]) == [f.name for f in fields(cls)]
