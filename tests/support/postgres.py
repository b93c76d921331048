"""A real PostgreSQL server for the tests, started once per session: `initdb` in a temporary
folder, `pg_ctl start` on a free port with its unix socket in that folder, stopped at the end.

PostgreSQL refuses to run as root: when the tests run as root (containers), the folder is handed
to an unprivileged user ('postgres' where Debian's package made one, else 'nobody') and the
server's commands run as that user; otherwise they run as the caller. Debian keeps the binaries in
/usr/lib/postgresql/<version>/bin, off PATH: they are looked for there too.

Without the binaries (or the psycopg driver) the tests that need a server are skipped, saying why,
unless SENTIRIC_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port

SUPERUSER = "tts"
_counter = itertools.count(1)


def binaries() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, else Debian's, newest version first."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(d) for d in sorted(debian, key=lambda d: int(Path(d).parent.name), reverse=True)]
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def unavailable(reason: str) -> None:
    if os.environ.get("SENTIRIC_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason}, and SENTIRIC_REQUIRE_POSTGRES=1", pytrace=False)
    pytest.skip(f"{reason} (set SENTIRIC_REQUIRE_POSTGRES=1 to make this a failure)")


@dataclass(frozen=True)
class PostgresServer:
    socket_dir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self) -> str:
        """A new empty database (one per test: no test sees another's voices); its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as: None when this process is not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root, and there is neither a 'postgres' nor a 'nobody' user")


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = binaries()
    if bin_dir is None:
        unavailable("PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the psycopg driver is not installed (pip install -e '.[postgres]')")
    assert bin_dir is not None
    # Not under pytest's temporary folder: that is private to its user, and the server's user
    # must reach its own files.
    root = Path(tempfile.mkdtemp(prefix="sentiric-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    user = _server_user()
    as_user: dict[str, object] = {}
    if user is not None:
        for path in (root, sockets):
            os.chown(path, *user)
        as_user = {"user": user[0], "group": user[1], "extra_groups": []}
    port = free_port()
    log = root / "server.log"

    def run(*args: str) -> None:
        subprocess.run(
            [str(bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            cwd=root,  # the server's user may not read the caller's working folder
            timeout=120,
            **as_user,  # type: ignore[arg-type]
        )

    try:
        run("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 "
            # A throwaway server: durability costs time and proves nothing here.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run("pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", options)
    except subprocess.CalledProcessError as exc:
        told = (exc.stderr or b"").decode(errors="replace")
        if log.exists():
            told += log.read_text(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {told}") from exc
    try:
        yield PostgresServer(sockets, port)
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres_server.create_database()
