"""Bugs found by trying krimppost as a new user would (issue 14, item 6): each as it was met."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from test_serve import World, serving
from test_social_cli import build_drafts

from conftest import REPO, VALID, Project
from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.state import StateStore

NOW = "2026-11-27T12:00"
# As in a user's shell: stdout to a pipe is block-buffered (PYTHONUNBUFFERED would hide that).
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "PYTHONPATH": str(REPO)}


def krimppost(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="krimppost")


def check(project: Project) -> Result:
    return krimppost("check", "--root", str(project.root), "--now", NOW)


def lines_of(result: Result, source: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"content/{source}:")]


# serve: the confirmation mail's Message-ID ---------------------------------------------------


@pytest.fixture
def default_world(project: Project) -> Iterator[World]:
    """The web app with the config as a new project has it: no message_id_domain."""
    path = project.root / "config.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^message_id_domain\s*=.*\n", "", text), encoding="utf-8")
    assert "message_id_domain" not in path.read_text(encoding="utf-8")
    with serving(project) as world:
        yield world


def test_confirmation_mail_has_a_valid_message_id_by_default(default_world: World) -> None:
    reply = default_world.subscribe("nieuw@example.nl", ["wrb"])
    assert reply.status == 200
    raw = default_world.recorder.raw_for("nieuw@example.nl")
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    header = mail["Message-ID"]
    assert not header.defects, (str(header), header.defects)
    m = re.fullmatch(r"<([^<>@\s]+)@([^<>@\s]+)>", str(header))
    assert m is not None, str(header)
    host = urlsplit(load_config(default_world.project.root).site.base_url).hostname
    assert m.group(2) == host == "www.bevolkingsdaling.nl"


# a reader that stops reading: `| head -1` ----------------------------------------------------


def _stderr_is_quiet(stderr: str) -> None:
    assert "BrokenPipeError" not in stderr, stderr
    assert "interne fout" not in stderr, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr == "", stderr


def test_subscribers_list_into_head_ends_quietly(project: Project) -> None:
    csv = project.root / "abonnees.csv"
    # Far more than a pipe holds (64 KiB): the list is still writing when the reader leaves.
    rows = "".join(f"lezer{i:05d}@example.nl,\n" for i in range(3000))
    csv.write_text("email,tracks\n" + rows, encoding="utf-8")
    imported = subprocess.run(
        [sys.executable, "-m", "pipeline", "subscribers", "import", str(csv)],
        cwd=project.root,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    listing = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "subscribers", "list"],
        cwd=project.root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listing.stdout is not None and listing.stderr is not None
    first = listing.stdout.readline()
    listing.stdout.close()  # as `head -1` does after its line
    stderr = listing.stderr.read()
    assert listing.wait(timeout=120) == 1
    assert first.startswith("lezer00000@example.nl")
    _stderr_is_quiet(stderr)


@pytest.mark.parametrize(
    "command",
    # `subscribers export` does not flush: its few bytes meet the closed pipe only at exit.
    [["status"], ["social", "list"], ["check"], ["subscribers", "export"]],
)
def test_output_into_a_closed_pipe_ends_quietly(project: Project, command: list[str]) -> None:
    project.write("a.md", VALID)
    read, write = os.pipe()
    os.close(read)  # nobody reads: the very first line cannot be written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *command, "--root", str(project.root)],
            env=ENV,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 1
    _stderr_is_quiet(done.stderr)


# every problem of an item in one run ---------------------------------------------------------

PODCAST = """\
---
title: Aflevering 1
date: 2026-11-01
kind: podcast
track: wrb
summary: Een gesprek.
audio:
  url: audio/aflevering-1.mp3
  lenght: 5000
  duration: lang
  type: text/plain
transcript: false
transcript_reason: Een testaflevering zonder gesproken tekst.
---
Tekst.
"""


def test_podcast_with_three_bad_audio_keys_and_a_missing_file_in_one_run(
    project: Project,
) -> None:
    project.write("wrb/podcast.md", PODCAST)
    result = check(project)
    assert result.exit_code == 1
    assert lines_of(result, "wrb/podcast.md") == [
        "content/wrb/podcast.md:8: 'audio.url': bestand 'audio/aflevering-1.mp3' niet gevonden "
        "in content/",
        "content/wrb/podcast.md:9: 'audio.lenght' onbekende sleutel 'lenght'; bedoelde je "
        "'length'? (toegestaan: url, length, duration, type)",
        "content/wrb/podcast.md:10: 'audio.duration' moet de vorm UU:MM:SS hebben, bijvoorbeeld "
        "00:42:10, niet 'lang'",
        "content/wrb/podcast.md:11: 'audio.type' moet een MIME-type voor audio zijn, zoals "
        "audio/mpeg, niet 'text/plain'",
    ]
    # Each reported problem fixed once: the next run is clean.
    project.write_bytes("wrb/audio/aflevering-1.mp3", b"ID3")
    project.write(
        "wrb/podcast.md",
        PODCAST.replace("lenght", "length")
        .replace("duration: lang", "duration: '00:42:10'")
        .replace("text/plain", "audio/mpeg"),
    )
    assert check(project).exit_code == 0


def test_event_with_two_bad_keys_in_one_run(project: Project) -> None:
    project.write(
        "wrb/event.md",
        VALID.replace("kind: news", "kind: event").replace(
            "summary:",
            "event:\n  start: 2026-12-01T10:00\n  end: 2026-12-01T09:00\n  location: ''\nsummary:",
        ),
    )
    assert lines_of(check(project), "wrb/event.md") == [
        "content/wrb/event.md:8: 'event.end' mag niet vóór 'event.start' liggen",
        "content/wrb/event.md:9: 'event.location' mag niet leeg zijn",
    ]


def test_wrong_kind_comes_with_the_blocks_own_problems(project: Project) -> None:
    project.write("wrb/p.md", PODCAST.replace("kind: podcast", "kind: news"))
    found = lines_of(check(project), "wrb/p.md")
    assert (
        found[0]
        == "content/wrb/p.md:7: 'audio' hoort alleen bij kind: podcast (dit item is 'news')"
    )
    assert [line.split(": ", 1)[1].split(" ")[0] for line in found[1:]] == [
        "'audio.url':",
        "'audio.lenght'",
        "'audio.duration'",
        "'audio.type'",
        "'transcript'",
        "'transcript_reason'",
    ]


def test_missing_image_and_attachment_with_other_problems(project: Project) -> None:
    project.write(
        "wrb/a.md",
        VALID.replace(
            "summary:",
            "image: foto.png\ntags: [1, wonen, 2]\nsocial: {x: '', mastodn: hoi}\n"
            "attachments:\n  - {title: Rapport, path: rapport.pdf}\nsummary:",
        ),
    )
    assert lines_of(check(project), "wrb/a.md") == [
        "content/wrb/a.md:6: 'image': bestand 'foto.png' niet gevonden in content/",
        "content/wrb/a.md:6: 'image_alt' ontbreekt: een afbeelding heeft een beschrijving nodig "
        "(alt-tekst)",
        "content/wrb/a.md:7: 'tags' element 1 moet niet-lege tekst zijn, niet een getal",
        "content/wrb/a.md:7: 'tags' element 3 moet niet-lege tekst zijn, niet een getal",
        "content/wrb/a.md:8: 'social.mastodn' onbekende sleutel 'mastodn'; bedoelde je "
        "'mastodon'? (toegestaan: x, linkedin, mastodon, bluesky, threads)",
        "content/wrb/a.md:8: 'social.x' mag niet leeg zijn",
        "content/wrb/a.md:10: 'attachments.0.path': bestand 'rapport.pdf' niet gevonden in "
        "content/",
    ]


# Dutch where a person reads it ---------------------------------------------------------------


def test_check_summary_is_dutch_with_singular_and_plural(project: Project) -> None:
    project.write("a.md", VALID)
    one = check(project)
    assert (
        one.stdout.splitlines()[-1]
        == "1 item: 1 gepubliceerd, 0 onder embargo, 0 concepten; 0 fouten"
    )
    project.write("b.md", VALID.replace("kind: news", "kind: news\ndraft: true"))
    project.write("c.md", VALID.replace("kind: news", "kind: news\ndraft: true"))
    project.write("d.md", VALID.replace("date: 2026-11-01", "date: 2027-01-01"))
    project.write("e.md", VALID.replace("kind: news", "kind: nieuws"))
    many = check(project)
    assert many.stdout.splitlines()[-1] == (
        "4 items: 1 gepubliceerd, 1 onder embargo, 2 concepten; 1 fout"
    )


@pytest.mark.parametrize(
    ("front", "line", "message"),
    [
        (
            "title: Krimp: een verkenning\n",
            2,
            "een ': ' midden in een waarde; zet de waarde tussen aanhalingstekens, bijv. title: \"Krimp: een verkenning\"",
        ),
        (
            "title: Een item\ndate 2026-11-01\n",
            3,
            "een regel zonder ':' na de sleutel; schrijf sleutel: waarde",
        ),
        ("title: Een item\n\tdate: 2026-11-01\n", 3, "een tab-teken; YAML kent alleen spaties"),
        (
            'title: "Krimp in de regio\ndate: 2026-11-01\n',
            2,
            "een aanhalingsteken wordt niet gesloten",
        ),
        (
            "event:\n  start: 2026-12-01\n location: Assen\n",
            4,
            "deze regel is anders ingesprongen dan de sleutels erboven",
        ),
        (
            "title: Een item\n  date: 2026-11-01\n",
            3,
            "deze regel is verder ingesprongen dan de sleutel erboven",
        ),
        (
            'title: "Krimp" in de regio\n',
            2,
            "na het afsluitende aanhalingsteken staat nog tekst",
        ),
        ("tags: [wonen, krimp\n", 2, "een lijst tussen [ ] wordt niet gesloten"),
        ("title: @bevolking\n", 2, "een waarde kan niet met '@' beginnen"),
        ("title: *anker\n", 2, "ankers en verwijzingen (&naam, *naam) zijn niet toegestaan"),
    ],
    ids=[
        "colon",
        "no-colon",
        "tab",
        "quote",
        "block-end",
        "indent",
        "after-quote",
        "flow",
        "at",
        "alias",
    ],
)
def test_yaml_problems_are_dutch_with_a_hint(
    project: Project, front: str, line: int, message: str
) -> None:
    project.write("item.md", "---\n" + front + "---\nTekst.\n")
    (found,) = lines_of(check(project), "item.md")
    assert found.startswith(f"content/item.md:{line}: "), found
    assert message in found, found
    english = ("mapping values", "could not find", "found character", "expected", "while ")
    assert not any(word in found for word in english), found


def test_yaml_problem_not_known_keeps_pyyaml_text_in_parentheses() -> None:
    import yaml

    from pipeline.content.frontmatter import yaml_problem

    exc = yaml.MarkedYAMLError(problem="something new went wrong", context="while testing")
    text = yaml_problem(exc, "title: x\n")
    assert text.startswith("de front matter is geen geldige YAML")
    assert text.endswith("(something new went wrong (while testing))")


def _no_english(text: str) -> None:
    for english in ("Error:", "Usage:", "Try '", "Options:", "Commands:", "Show this message"):
        assert english not in text, text


def test_click_usage_errors_are_dutch_with_status_2(project: Project) -> None:
    root = str(project.root)
    cases = [
        (["social", "reject", "wrb-a/x", "--root", root], "Fout: optie '--reason' ontbreekt."),
        (["social", "approve", "--root", root], "Fout: argument 'ID' ontbreekt."),
        (["chek"], "Fout: onbekende opdracht 'chek'. Bedoelde je 'check'?"),
        (
            ["check", "--roo", root],
            "Fout: onbekende optie '--roo'. Bedoelde je een van: '--now', '--root'?",
        ),
        (
            ["social", "export", "--format", "xml", "--root", root],
            "Fout: ongeldige waarde voor '--format': 'xml' kan niet; kies uit 'csv', 'buffer', "
            "'json'.",
        ),
        (["check", "--root"], "Fout: optie '--root' heeft een waarde nodig."),
        (["status", "extra"], "Fout: onverwacht extra argument (extra)."),
    ]
    for args, expected in cases:
        result = krimppost(*args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.stderr.splitlines(), (args, result.stderr)
        _no_english(result.stderr)
    usage = krimppost("social", "approve")
    assert usage.stderr.splitlines()[:2] == [
        "Gebruik: krimppost social approve [OPTIES] ID",
        "Probeer 'krimppost social approve --help' voor hulp.",
    ]


def test_usage_error_from_the_installed_command_is_dutch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "social", "reject", "x"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == "Fout: optie '--reason' ontbreekt."
    _no_english(done.stderr)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["check"],
        ["social"],
        ["social", "list"],
        ["subscribers"],
        ["subscribers", "export"],
        ["newsletter"],
        ["newsletter", "send"],
        ["serve"],
    ],
)
def test_help_is_dutch(args: list[str]) -> None:
    result = krimppost(*args, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Gebruik: krimppost")
    assert "Opties:" in result.stdout
    assert "Toon deze hulp en stop." in result.stdout
    _no_english(result.stdout)
    for english in ("[OPTIONS]", "COMMAND [ARGS]", "[default:", "TEXT", "DIRECTORY", "[required]"):
        assert english not in result.stdout, result.stdout


def test_version_is_dutch() -> None:
    result = krimppost("--version")
    assert result.exit_code == 0
    assert re.fullmatch(r"krimppost, versie \S+\n", result.stdout), result.stdout
    assert "Toon de versie en stop." in krimppost("--help").stdout


def test_status_shows_dutch_status_values(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    build_drafts(project)
    config = load_config(project.root)
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    with StateStore(config.path(config.state.path)) as state:
        store = SubscriberStore(state, config)
        store.add("actief@example.nl", None, now)
        store.request("wacht@example.nl", "*", now)
    result = krimppost("status", "--root", str(project.root), "--now", NOW)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "abonnees: actief 1, wacht op bevestiging 1" in out.splitlines(), out
    assert "  wrb-a/x (te beoordelen)" in out.splitlines(), out
    for english in ("pending", "active", "(stale)"):
        assert english not in out, out


def test_social_list_accepts_dutch_and_english_status(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    build_drafts(project)
    root = str(project.root)

    def listed(status: str) -> Result:
        return krimppost("social", "list", "--root", root, "--now", NOW, "--status", status)

    waiting = listed("te-beoordelen")
    assert waiting.exit_code == 0, waiting.output
    rows = waiting.stdout.splitlines()[1:]
    assert len(rows) == 4 and all("te beoordelen" in row for row in rows), waiting.stdout
    assert listed("pending").stdout == waiting.stdout
    assert listed("Te-Beoordelen").stdout == waiting.stdout
    assert listed("goedgekeurd").stdout == "geen concepten\n"
    bad = listed("klaar")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == (
        "krimppost: onbekende status 'klaar'; kies uit: te-beoordelen, goedgekeurd, afgewezen, "
        "verouderd, ingetrokken (of pending, approved, rejected, stale, withdrawn)"
    )
    help_text = krimppost("social", "list", "--help").stdout
    assert "te-beoordelen, goedgekeurd, afgewezen, verouderd of ingetrokken" in " ".join(
        help_text.split()
    )


def test_subscribers_status_filter_takes_the_dutch_words(project: Project) -> None:
    """`subscribers list --status` accepted only the English values the list never shows."""
    root = str(project.root)
    assert (
        krimppost("subscribers", "add", "a@example.nl", "--tracks", "*", "--root", root).exit_code
        == 0
    )
    dutch = krimppost("subscribers", "list", "--status", "actief", "--root", root)
    english = krimppost("subscribers", "list", "--status", "active", "--root", root)
    none = krimppost("subscribers", "list", "--status", "afgemeld", "--root", root)
    assert dutch.exit_code == 0, dutch.output
    assert "a@example.nl" in dutch.output
    assert dutch.output == english.output
    assert "a@example.nl" not in none.output
    exported = krimppost(
        "subscribers", "export", "--status", "wacht-op-bevestiging", "--root", root
    )
    assert exported.exit_code == 0 and "a@example.nl" not in exported.output
