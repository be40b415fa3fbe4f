"""config.toml validation: every problem with its line, all in one run, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from pipeline.config import load_config, parse_config
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
