"""A PostgreSQL server for the tests and benchmarks that need one.

Where the server comes from, in order:

1. ``$PINNLAB_TEST_POSTGRES_URL`` (``.ci/run`` starts a throwaway cluster and exports it);
2. a temporary cluster started here from the local binaries (``initdb``/``pg_ctl`` on PATH or
   Debian's ``/usr/lib/postgresql/<version>/bin``) on a free loopback port, trust authentication,
   stopped and deleted at the end.  As root it runs as the ``postgres`` user (``initdb`` refuses
   root) in a directory of its own under ``/tmp`` (pytest's own tmp dir is private to root);
3. none: :func:`postgres_url` raises :class:`Unavailable`, which a fixture turns into a skip, or
   into a failure when ``PINNLAB_REQUIRE_POSTGRES=1`` (CI must not pass by skipping).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Unavailable", "postgres_url", "required", "or_skip"]


class Unavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


def required() -> bool:
    return os.environ.get("PINNLAB_REQUIRE_POSTGRES") == "1"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def temporary_cluster() -> Iterator[str]:
    """Start a throwaway cluster; yields ``postgresql://postgres@127.0.0.1:PORT/pinnlab``."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise Unavailable("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        raise Unavailable("running as root without runuser: cannot start PostgreSQL as the postgres user")
    base = Path(tempfile.mkdtemp(prefix="pinnlab-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        try:
            shutil.chown(base, "postgres", "postgres")
        except (LookupError, OSError) as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise Unavailable(f"no postgres user to run the server as ({exc})") from None
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"

    def run(argv: list[str]) -> None:
        proc = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise Unavailable(f"{Path(argv[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")

    started = False
    try:
        run([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60", "start"])
        started = True
        createdb = _bin("createdb") or "createdb"
        run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "pinnlab"])
        yield f"postgresql://postgres@127.0.0.1:{port}/pinnlab"
    finally:
        if started:
            subprocess.run(
                _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL database to create studies in (see the module docstring)."""
    url = os.environ.get("PINNLAB_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with temporary_cluster() as url:
        yield url


@contextmanager
def or_skip() -> Iterator[None]:
    """Turn :class:`Unavailable` inside the block into a skip, or a failure where a server is
    required (``PINNLAB_REQUIRE_POSTGRES=1``)."""
    import pytest

    try:
        yield
    except Unavailable as exc:
        if required():
            pytest.fail(f"PINNLAB_REQUIRE_POSTGRES=1 but no PostgreSQL server: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
