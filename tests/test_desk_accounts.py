"""`krimppost users …` and the accounts behind the desk: Argon2id hashes only, the password
never stored or shown, the lock after five wrong passwords and how `passwd` lifts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from storesql import query

from conftest import REPO, Project
from pipeline.config import load_config
from pipeline.desk.accounts import LOCK_SECONDS, Accounts
from pipeline.state import StoreAddress

pytestmark = pytest.mark.usefixtures("state_backend")

PASSWORD = "een heel lang wachtwoord"


def users(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "users", *args, "--root", str(root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        input=stdin,
        capture_output=True,
        text=True,
    )


def test_an_account_keeps_only_an_argon2id_hash(project: Project) -> None:
    root = project.root
    made = users(
        root,
        "add",
        "anna",
        "--role",
        "communicatie",
        "--email",
        "Anna@Example.org",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    [(name, role, hashed, email)] = query(
        root, "SELECT name, role, password_hash, email FROM desk_users"
    )
    assert (name, role, email) == ("anna", "communicatie", "Anna@example.org")
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    store = root / ".krimppost"
    for file in store.glob("state.sqlite*"):
        assert PASSWORD.encode() not in file.read_bytes(), file
    assert PASSWORD not in (root / "config.toml").read_text(encoding="utf-8")
    listed = users(root, "list")
    assert listed.stdout.split() == ["anna", "communicatie", "Anna@example.org"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("add", "bob", "--role", "redacteur"), "", "geen terminal om het wachtwoord te vragen"),
        (("add", "bob", "--role", "redacteur", "--password-stdin"), "kort\n", "minstens 12 tekens"),
        (
            ("add", "Bob Smit", "--role", "redacteur", "--password-stdin"),
            PASSWORD + "\n",
            "ongeldige gebruikersnaam",
        ),
        (("add", "bob", "--role", "baas", "--password-stdin"), PASSWORD + "\n", "baas"),
        (("remove", "niemand"), None, "bestaat niet"),
    ],
)
def test_wrong_use_is_one_dutch_line(
    project: Project, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    done = users(project.root, *args, stdin=stdin)
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr
    assert query(project.root, "SELECT COUNT(*) FROM desk_users") == [(0,)]


def test_a_duplicate_name_is_refused(project: Project) -> None:
    assert (
        users(
            project.root,
            "add",
            "anna",
            "--role",
            "beheerder",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        ).returncode
        == 0
    )
    again = users(
        project.root,
        "add",
        "anna",
        "--role",
        "redacteur",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert again.returncode == 2 and "bestaat al" in again.stderr
    assert query(project.root, "SELECT role FROM desk_users") == [("beheerder",)]


def test_five_wrong_passwords_lock_for_15_minutes_and_passwd_lifts_it(project: Project) -> None:
    root = project.root
    now = [1_800_000_000.0]
    accounts = Accounts(StoreAddress.of(load_config(root)), lambda: now[0])
    accounts.add("anna", "communicatie", PASSWORD)
    for _ in range(4):
        assert accounts.sign_in("anna", "fout fout fout", "test") is None
    assert accounts.sign_in("anna", PASSWORD, "test") is not None  # four do not lock
    for _ in range(5):
        assert accounts.sign_in("anna", "fout fout fout", "test") is None
    assert accounts.sign_in("anna", PASSWORD, "test") is None  # locked
    now[0] += LOCK_SECONDS - 1
    assert accounts.sign_in("anna", PASSWORD, "test") is None
    now[0] += 2
    assert accounts.sign_in("anna", PASSWORD, "test") is not None
    for _ in range(5):
        accounts.sign_in("anna", "fout fout fout", "test")
    new = "een ander lang wachtwoord"
    assert users(root, "passwd", "anna", "--password-stdin", stdin=new + "\n").returncode == 0
    assert accounts.sign_in("anna", PASSWORD, "test") is None
    session = accounts.sign_in("anna", new, "test")
    assert session is not None
    actions = [r.action for r in accounts.audit_rows()]
    assert actions.count("account geblokkeerd") == 2 and "wachtwoord gewijzigd" in actions
    # Removing the account ends its sessions at once.
    assert users(root, "remove", "anna").returncode == 0
    assert accounts.session(session.id, 3600) is None
