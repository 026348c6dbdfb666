"""A throwaway PostgreSQL cluster for the catalog tests: initdb + pg_ctl in a temp dir.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
(the Debian package creates it) and its commands run through ``runuser``. The server listens only
on a Unix socket inside the temp dir, with a non-UTC time zone so that time zone handling is tested.
Tests that need it skip, saying why, when the binaries or the driver are missing, unless
MOMENT_SEARCH_REQUIRE_POSTGRES is set (CI): then they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_ENV = "MOMENT_SEARCH_REQUIRE_POSTGRES"
SERVER_TIMEZONE = "Asia/Kolkata"  # UTC+05:30: a wrong time zone conversion cannot hide
SEARCH_PATTERN = "/usr/lib/postgresql/*/bin"


def find_bin_dir(pattern: str = SEARCH_PATTERN) -> Path | None:
    """The newest PostgreSQL bin directory holding initdb and pg_ctl (Debian layout, then PATH)."""
    candidates = sorted(glob.glob(pattern), key=lambda p: int(Path(p).parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if all((Path(candidate) / name).is_file() for name in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def skip_or_fail(reason: str) -> None:
    """Skip the calling test, or fail it when MOMENT_SEARCH_REQUIRE_POSTGRES is set."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so PostgreSQL tests must run)")
    pytest.skip(reason)


def require_postgres(pattern: str = SEARCH_PATTERN) -> Path:
    """The PostgreSQL bin directory, after checking the driver; skips or fails otherwise."""
    bin_dir = find_bin_dir(pattern)
    if bin_dir is None:
        skip_or_fail(f"PostgreSQL binaries (initdb, pg_ctl) not found in {pattern} or on PATH "
                     f"(Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        skip_or_fail("the PostgreSQL driver psycopg is not installed (pip install -e '.[dev]')")
    return bin_dir


@dataclass
class Cluster:
    """A running throwaway cluster: data and socket under ``root``, run as ``user``."""

    bin_dir: Path
    root: Path
    user: str | None  # None: the current (unprivileged) user runs it

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        """The server log (connections are logged, with their application_name)."""
        return self.root / "server.log"

    def run(self, tool: str, *args: str) -> None:
        """Run a PostgreSQL tool as the cluster's user; raises with its output on failure."""
        command = [str(self.bin_dir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` over the Unix socket."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"


def _cluster_user() -> str | None:
    """As root, the ``postgres`` system user (PostgreSQL refuses root); otherwise nobody else."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        skip_or_fail("running as root and there is no 'postgres' user to run PostgreSQL as")
    return "postgres"


def start_cluster(bin_dir: Path) -> Cluster:
    """initdb a cluster in a fresh temp dir (owned by the cluster's user) and start it."""
    user = _cluster_user()
    cluster = Cluster(bin_dir, Path(tempfile.mkdtemp(prefix="moment-search-pg-")), user)
    cluster.socket_dir.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for path in (cluster.root, cluster.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    data = cluster.root / "data"
    cluster.run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                "--locale=C", "--no-sync")
    options = (f"-c listen_addresses='' -c unix_socket_directories={cluster.socket_dir} "
               f"-c timezone={SERVER_TIMEZONE} -c fsync=off -c max_connections=200 "
               f"-c log_connections=on")
    cluster.run("pg_ctl", "-D", str(data), "-l", str(cluster.log), "-w",
                "-o", options, "start")
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Stop the server (fast shutdown) and delete its temp dir."""
    try:
        cluster.run("pg_ctl", "-D", str(cluster.root / "data"), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


def admin(cluster: Cluster, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) as the superuser."""
    import psycopg

    with psycopg.connect(host=str(cluster.socket_dir), user="postgres", dbname="postgres",
                         autocommit=True) as connection:
        connection.execute(statement)
