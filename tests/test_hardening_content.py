"""Hostile and odd editor input in content/ and templates/: bounded, confined, reported.

Issue 13 items 1 (YAML alias bombs), 2 (links out of content/ and templates/), 5 (unreadable
folders and files) and the quoting of odd file names in problem lines.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, VALID, Project

LIMIT = 20  # seconds: a hang is a failure, not a stuck test run


def run(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            *args,
            "--root",
            str(project.root),
            "--now",
            "2026-11-27T12:00",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=LIMIT,
    )


def outbox_bytes(root: Path) -> bytes:
    """Every byte of every file in the outbox, names included."""
    out = bytearray()
    for path in sorted((root / "outbox").rglob("*")):
        out += str(path).encode() + b"\n"
        if path.is_file() and not path.is_symlink():
            out += path.read_bytes()
    return bytes(out)


# 1. YAML alias bombs --------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    names = "abcdefghijklmnop"
    for previous, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_one_problem_in_check_and_build(project: Project) -> None:
    project.write("goed.md", VALID)
    bomb = VALID.replace("summary:", alias_bomb() + "summary:")
    assert len(alias_bomb()) < 500
    project.write("wrb/bom.md", bomb)
    for command in ("check", "build"):
        result = run(project, command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            "content/wrb/bom.md:6: ankers en verwijzingen (&naam, *naam) zijn niet toegestaan"
            in result.stdout
        ), result.stdout
        assert "interne fout" not in result.stdout + result.stderr
    assert (project.root / "outbox/site/berichten/goed/index.html").is_file()


def test_other_alias_tricks_deep_nesting_and_size_are_bounded(project: Project) -> None:
    project.write("goed.md", VALID)
    shapes = {
        # a merge key needs an alias; a mapping bomb; an anchor on its own; an alias as a key
        "merge.md": "basis: &b {x: 1}\nkopie:\n  <<: *b\n",
        "mapping.md": "a: &a {k1: x, k2: x, k3: x}\nb: &b {k1: *a, k2: *a, k3: *a}\n",
        "anker.md": "tags: &t [wonen]\n",
        "sleutel.md": "x: &k sleutel\n*k : waarde\n",
        "gelabeld.md": "tags: !!seq &t [wonen]\n",
        "diep.md": "tags: " + "[" * 900 + "]" * 900 + "\n",
        "blokdiep.md": "".join(" " * i + f"n{i}:\n" for i in range(40)) + " " * 40 + "x: 1\n",
    }
    for name, yaml_text in shapes.items():
        project.write(f"vorm/{name}", VALID.replace("summary:", yaml_text + "summary:"))
    project.write("vorm/groot.md", VALID.replace("summary:", "# " + "x" * 70_000 + "\nsummary:"))
    result = run(project, "check")
    assert result.returncode == 1
    out = result.stdout
    assert "interne fout" not in out + result.stderr
    for name in ("merge", "mapping", "anker", "gelabeld"):
        assert f"content/vorm/{name}.md:6: ankers en verwijzingen" in out, out
    assert "content/vorm/sleutel.md:6: ankers en verwijzingen" in out, out
    assert "content/vorm/diep.md:6: ongeldige YAML" in out or (
        "content/vorm/diep.md:6: front matter is te diep genest" in out
    ), out
    assert "content/vorm/blokdiep.md:22: front matter is te diep genest (meer dan 16" in out, out
    assert "content/vorm/groot.md:1: front matter is te groot (68 KiB, hoogstens 64 KiB)" in out
    assert out.count("content/vorm/") == len(shapes) + 1, out  # one line per file
    assert "1 gepubliceerd" in out


def test_ampersand_in_text_is_no_anchor(project: Project) -> None:
    project.write("a.md", VALID.replace("Een geldig item", '"Sloop & transformatie *nu*"'))
    result = run(project, "check")
    assert result.returncode == 0, result.stdout


# 2. Links out of content/ and templates/ -----------------------------------------------

SECRET = "GEHEIM-7f3a9c"


def with_attachment(path: str) -> str:
    return VALID.replace(
        "summary:", f"attachments:\n  - title: Jaarverslag\n    path: {path}\nsummary:"
    )


def test_links_out_of_content_are_problems_and_never_published(
    project: Project, tmp_path: Path
) -> None:
    outside = tmp_path / "buiten"
    (outside / "items").mkdir(parents=True)
    (outside / "geheim.txt").write_text(SECRET)
    (outside / "items" / "geheim.md").write_text(VALID.replace("Een geldig item", SECRET))
    project.write("goed.md", VALID)
    assert run(project, "build").returncode == 0  # the state store exists now
    content = project.root / "content"
    project.write("wrb/jaar.md", with_attachment("jaarverslag.pdf"))
    (content / "wrb" / "jaarverslag.pdf").symlink_to("../../.krimppost/state.sqlite")
    project.write("wrb/absoluut.md", with_attachment("geheim.txt"))
    (content / "wrb" / "geheim.txt").symlink_to(outside / "geheim.txt")
    (content / "extern").symlink_to(outside / "items")
    (content / "extern.md").symlink_to(outside / "items" / "geheim.md")
    for command in ("check", "build"):
        result = run(project, command)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        state = (project.root / ".krimppost" / "state.sqlite").resolve()
        assert f"content/wrb/jaarverslag.pdf: koppeling wijst buiten content/: {state}" in lines
        assert f"content/wrb/geheim.txt: koppeling wijst buiten content/: {outside}/geheim.txt" in (
            lines
        )
        assert f"content/extern: koppeling wijst buiten content/: {outside}/items" in lines
        assert f"content/extern.md: koppeling wijst buiten content/: {outside}/items/geheim.md" in (
            lines
        )
        assert (
            "content/wrb/jaar.md:8: 'attachments.0.path': bestand 'jaarverslag.pdf' is een "
            "koppeling naar buiten content/ of ligt in een gekoppelde map; zo'n koppeling wordt "
            "niet gevolgd"
        ) in lines, lines
        assert any(
            line.startswith("content/wrb/absoluut.md:8: 'attachments.0.path'") for line in lines
        )
        assert "interne fout" not in result.stdout + result.stderr
    published = outbox_bytes(project.root)
    assert SECRET.encode() not in published
    assert b"SQLite format 3" not in published
    assert (project.root / "outbox/site/berichten/goed/index.html").is_file()


def test_link_loops_and_folder_links_are_one_line_each(project: Project) -> None:
    project.write("goed.md", VALID)
    project.write("a/item.md", VALID.replace("Een geldig item", "Item in a"))
    content = project.root / "content"
    (content / "a" / "l1").symlink_to("..")  # a loop through a folder link
    (content / "b1.md").symlink_to("b2.md")  # a -> b -> a
    (content / "b2.md").symlink_to("b1.md")
    (content / "woningen").symlink_to("a")  # a folder inside content/: not followed
    project.write("kopie-bron.md", VALID.replace("Een geldig item", "Bron"))
    (content / "kopie.md").symlink_to("kopie-bron.md")  # a file inside content/: fine
    for command in ("check", "build"):
        result = run(project, command)
        assert result.returncode == 1, result.stdout + result.stderr
        problems = [line for line in result.stdout.splitlines() if line.startswith("content/")]
        assert problems == [
            "content/a/l1: koppeling naar een map wordt niet gevolgd; verplaats of kopieer de "
            "bestanden zelf naar deze plek",
            "content/b1.md: koppeling in een kring (verwijst uiteindelijk naar zichzelf)",
            "content/b2.md: koppeling in een kring (verwijst uiteindelijk naar zichzelf)",
            "content/woningen: koppeling naar een map wordt niet gevolgd; verplaats of kopieer "
            "de bestanden zelf naar deze plek",
        ], result.stdout
    site = project.root / "outbox" / "site" / "berichten"
    assert sorted(p.name for p in site.iterdir()) == ["a-item", "goed", "kopie", "kopie-bron"]


def test_a_pipe_or_folder_as_attachment_is_named_for_what_it_is(project: Project) -> None:
    os.mkfifo(project.root / "content" / "pijp.pdf")
    (project.root / "content" / "map.pdf").mkdir()
    project.write("a.md", with_attachment("pijp.pdf"))
    project.write("b.md", with_attachment("map.pdf"))
    result = run(project, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    for name, path in (("a", "pijp.pdf"), ("b", "map.pdf")):
        assert (
            f"content/{name}.md:8: 'attachments.0.path': bestand '{path}' is geen gewoon "
            "bestand (een map, pijp of apparaat)"
        ) in result.stdout.splitlines(), result.stdout


def test_template_and_static_links_out_of_templates_are_refused(
    project: Project, tmp_path: Path
) -> None:
    secret = tmp_path / "geheim.html"
    secret.write_text(SECRET + " {{ 1 }}")
    project.write("goed.md", VALID)
    templates = project.root / "templates"
    (templates / "site").mkdir(parents=True)
    (templates / "site" / "item.html").symlink_to(secret)
    (templates / "static").mkdir()
    (templates / "static" / "geheim.css").symlink_to(secret)
    (templates / "static" / "lus.css").symlink_to("lus.css")
    expected = [
        f"templates/site/item.html: koppeling wijst buiten templates/: {secret}; "
        "sjabloon niet gebruikt",
        f"templates/static/geheim.css: koppeling wijst buiten templates/: {secret}; "
        "sjabloon niet gebruikt",
        "templates/static/lus.css: koppeling in een kring (verwijst uiteindelijk naar zichzelf); "
        "sjabloon niet gebruikt",
    ]
    result = run(project, "build")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == expected, result.stderr
    assert SECRET.encode() not in outbox_bytes(project.root)
    # What stops the build is a problem for `check` too.
    checked = run(project, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert [line for line in checked.stdout.splitlines() if "templates/" in line] == expected


def test_a_file_swapped_for_a_link_is_not_copied(project: Project, tmp_path: Path) -> None:
    """The check is repeated as the bytes are read (a link made after the content was read)."""
    from pipeline.content.confine import read_confined
    from pipeline.errors import KrimppostError
    from pipeline.render import templates

    secret = tmp_path / "geheim.txt"
    secret.write_text(SECRET)
    content = project.root / "content"
    (content / "wrb").mkdir()
    (content / "wrb" / "goed.pdf").write_bytes(b"%PDF")
    assert read_confined(content, "wrb/goed.pdf", "content/wrb/goed.pdf", "content/") == b"%PDF"
    (content / "wrb" / "goed.pdf").unlink()
    (content / "wrb" / "goed.pdf").symlink_to(secret)
    try:
        read_confined(content, "wrb/goed.pdf", "content/wrb/goed.pdf", "content/")
    except KrimppostError as exc:
        assert [str(p) for p in exc.problems] == [
            f"content/wrb/goed.pdf: koppeling wijst buiten content/: {secret}"
        ]
    else:
        raise AssertionError("a link out of content/ was read")
    # and a template made a link after the templates' fingerprint was taken
    own = project.root / "templates"
    (own / "site").mkdir(parents=True)
    (own / "site" / "item.html").symlink_to(secret)
    env = templates.environment([own], __import__("zoneinfo").ZoneInfo("Europe/Amsterdam"))
    try:
        templates.render(env, "site/item.html")
    except KrimppostError as exc:
        assert [str(p) for p in exc.problems] == [
            f"templates/site/item.html: koppeling wijst buiten templates/: {secret}"
        ]
    else:
        raise AssertionError("a template link out of templates/ was read")


# 5. Unreadable folders and files -------------------------------------------------------


def as_editor() -> list[str]:
    """Root reads through chmod 000: as root the commands run as `nobody` instead."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root this needs setpriv (util-linux) to run as nobody")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def give_to_nobody(base: Path) -> None:
    """As root, the project is `nobody`'s, who runs the commands (see `as_editor`)."""
    import pwd

    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in [base, *base.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)


def as_editor_run(project: Project, base: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(base / "cache")}
    return subprocess.run(
        [*as_editor(), sys.executable, "-m", "pipeline", command, "--root", str(project.root),
         "--now", "2026-11-27T12:00"],
        capture_output=True, text=True, env=env, timeout=LIMIT,
    )  # fmt: skip


def test_unreadable_folder_and_file_keep_their_items_online(tmp_path: Path) -> None:
    import tempfile

    as_editor()  # skips here when the commands cannot run as another user
    # Not under pytest's tmp_path: `nobody` may not enter root's 0700 folder.
    base = Path(tempfile.mkdtemp(prefix="krimppost-rechten-"))
    try:
        project = Project(base / "project")
        project.write("goed.md", VALID)
        folder = project.root / "content" / "energietransitie"
        project.write(
            "energietransitie/een.md",
            with_attachment("rapport.pdf").replace("Een geldig item", "Webinar warmtenet"),
        )
        project.write("energietransitie/rapport.pdf", "%PDF-rapport")
        project.write("energietransitie/twee.md", VALID.replace("Een geldig item", "Leerlijn"))
        project.write(
            "energietransitie/concept.md", VALID.replace("track: wrb", "draft: true\ntrack: wrb")
        )
        project.write("wrb/los.md", VALID.replace("Een geldig item", "Los bestand"))
        project.write(  # refers into the folder that will be unreadable
            "wrb/verwijst.md",
            with_attachment("/energietransitie/rapport.pdf").replace(
                "Een geldig item", "Verwijzing"
            ),
        )
        give_to_nobody(base)

        def krimppost(command: str) -> subprocess.CompletedProcess[str]:
            return as_editor_run(project, base, command)

        first = krimppost("build")
        assert first.returncode == 0, first.stdout + first.stderr
        folder.chmod(0)
        (project.root / "content" / "wrb" / "los.md").chmod(0)
        site = project.root / "outbox" / "site"
        for command in ("check", "build"):
            result = krimppost(command)
            assert result.returncode == 1, result.stdout + result.stderr
            lines = result.stdout.splitlines()
            assert (
                "content/energietransitie: map kan niet gelezen worden: geen leesrechten; wat "
                "erin stond blijft online zoals het was"
            ) in lines, result.stdout
            assert "content/wrb/los.md: kan niet lezen: geen leesrechten" in lines, result.stdout
            assert (
                "content/wrb/verwijst.md:8: 'attachments.0.path': bestand "
                "'/energietransitie/rapport.pdf' kan niet gelezen worden: geen leesrechten"
            ) in lines, result.stdout
            assert "interne fout" not in result.stdout + result.stderr
        assert "0 ingetrokken" in result.stdout and "4 vorige versie behouden" in result.stdout
        for item_id in (
            "energietransitie-een", "energietransitie-twee", "wrb-los", "wrb-verwijst", "goed"
        ):  # fmt: skip
            assert (site / "berichten" / item_id / "index.html").is_file(), item_id
        assert (site / "bestanden/energietransitie/rapport.pdf").read_bytes() == b"%PDF-rapport"
        feed = (site / "feeds" / "atom.xml").read_text()
        for title in ("Webinar warmtenet", "Leerlijn", "Los bestand"):
            assert title in feed
        again = krimppost("build")  # and it stays so on the next build
        assert again.returncode == 1 and "4 vorige versie behouden" in again.stdout
    finally:
        for path in (
            base / "project/content/energietransitie",
            base / "project/content/wrb/los.md",
        ):
            if path.exists():
                path.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_an_unreadable_template_folder_is_one_problem_line_in_check_and_build() -> None:
    import tempfile

    as_editor()  # skips here when the commands cannot run as another user
    base = Path(tempfile.mkdtemp(prefix="krimppost-sjablonen-"))
    folder = base / "project" / "templates" / "site"
    try:
        project = Project(base / "project")
        project.write("goed.md", VALID)
        folder.mkdir(parents=True)
        shutil.copy(REPO / "templates" / "site" / "item.html", folder / "item.html")
        give_to_nobody(base)
        folder.chmod(0)
        for command in ("check", "build"):
            result = as_editor_run(project, base, command)
            output = result.stdout + result.stderr
            assert result.returncode == 1, output
            assert "templates/site: map kan niet gelezen worden: geen leesrechten" in output
            assert "interne fout" not in output, output
    finally:
        if folder.exists():
            folder.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


# Low: odd file names cannot forge problem lines ---------------------------------------


def test_a_file_name_with_a_newline_cannot_forge_a_problem_line(project: Project) -> None:
    project.write("goed.md", VALID)
    forged = "x\ncontent/goed.md:1: vervalst.md"
    project.write(forged, VALID.replace("kind: news", "kind: nieuws"))
    project.write("wrb/\x1b[31mrood\u2028.md", VALID.replace("track: wrb", "track: x"))
    result = run(project, "check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert not any(line.startswith("content/goed.md") for line in lines), lines
    assert lines[0].startswith(
        "'content/wrb/\\x1b[31mrood\\u2028.md':5: 'track' onbekend traject 'x'"
    ), lines
    assert lines[1].startswith(
        "'content/x\\ncontent/goed.md:1: vervalst.md':4: 'kind' moet een van"
    ), lines
    assert len(lines) == 3  # two problems and the summary


def test_problem_lines_quote_only_odd_names() -> None:
    from pipeline.errors import Problem

    assert str(Problem("content/wrb/Sloop & transformatie é.md", 3, "x")) == (
        "content/wrb/Sloop & transformatie é.md:3: x"
    )
    assert str(Problem("content/a\tb.md", None, "x")) == "'content/a\\tb.md': x"
    assert str(Problem("content/a.md", 2, "regel een\nregel twee")) == (
        "content/a.md:2: regel een\\nregel twee"
    )


def test_a_file_given_to_another_owner_is_read_again_not_answered_from_the_cache() -> None:
    """chown (or an ACL) leaves size, mtime and mode alone: the parse cache must not hide it."""
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another owner")
    as_editor()  # skips here when the commands cannot run as another user
    base = Path(tempfile.mkdtemp(prefix="krimppost-eigenaar-"))
    try:
        project = Project(base / "project")
        project.write("goed.md", VALID)
        own = project.write("wrb/eigen.md", VALID.replace("Een geldig item", "Eigen item"))
        own.chmod(0o600)
        give_to_nobody(base)

        def krimppost(command: str) -> subprocess.CompletedProcess[str]:
            return as_editor_run(project, base, command)

        assert krimppost("build").returncode == 0
        os.chown(own, 0, 0)  # root's now, still 0600: `nobody` cannot read it
        for command in ("check", "build"):
            result = krimppost(command)
            assert result.returncode == 1, result.stdout + result.stderr
            assert "content/wrb/eigen.md: kan niet lezen: geen leesrechten" in (
                result.stdout.splitlines()
            ), result.stdout
        assert "1 vorige versie behouden" in result.stdout
        page = project.root / "outbox/site/berichten/wrb-eigen/index.html"
        assert "Eigen item" in page.read_text()
    finally:
        shutil.rmtree(base, ignore_errors=True)
