"""A throw-away IMAP server for the returns mailbox: Debian's Dovecot, run by the tests.

Like tests/pgcluster.py: the test session starts `dovecot -F -c <conf>` in a temp folder
with a config of its own (no system config read, the package's own service unused), a
passwd-file with one user, Maildir storage, and IMAPS only on a free loopback port with a
certificate from a throw-away CA (trustme). Stopped when the session ends. When the
tests run as root, Dovecot's processes run as the package's `dovecot`/`dovenull` users
and the mail belongs to `nobody`, because Dovecot refuses to keep mail as root.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = Path("/usr/sbin/dovecot")
USER = "retour@bevolkingsdaling.nl"
PASSWORD = "geheim-retour-wachtwoord"


class DovecotError(RuntimeError):
    pass


def available() -> bool:
    return DOVECOT.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ImapServer:
    def __init__(self) -> None:
        import trustme

        self.dir = Path(tempfile.mkdtemp(prefix="krimppost-imap-"))
        os.chmod(self.dir, 0o755)
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
        self.port = _free_port()
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        root = os.geteuid() == 0
        owner = pwd.getpwnam("nobody") if root else pwd.getpwuid(os.getuid())
        if root:
            os.chown(self.mail, owner.pw_uid, owner.pw_gid)
        (self.dir / "users").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{owner.pw_uid}:{owner.pw_gid}::{self.mail}::\n"
        )
        me = pwd.getpwuid(os.getuid()).pw_name
        internal = "dovecot" if root else me
        login = "dovenull" if root else me
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
info_log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.dir}/cert.pem
ssl_key = <{self.dir}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = {min(owner.pw_uid, 1)}
mail_location = maildir:{self.mail}/Maildir
passdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
userdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        )
        self.process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait()

    def _log(self) -> str:
        log = self.dir / "dovecot.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def _wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise DovecotError(f"dovecot stopte meteen: {err[-1500:]}{self._log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise DovecotError(f"dovecot luistert niet op {self.port}: {self._log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
