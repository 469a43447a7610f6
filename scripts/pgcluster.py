"""A private PostgreSQL cluster run with the machine's own binaries (initdb, pg_ctl).

Used by the test suite (a throw-away cluster per test worker) and by `make run-postgres`
(a lasting cluster under ./data/postgres/). Standard library only, so the Makefile can ask it
where PostgreSQL lives before the virtualenv exists:

    python3 scripts/pgcluster.py bindir          # prints the directory of initdb, or exits 1
    python3 scripts/pgcluster.py run DIR -- CMD  # cluster in DIR, database `journeys`, runs CMD
                                                 # with JOURNEYS_DATABASE_URL set, then stops it

PostgreSQL refuses to run as root: when we are root, its programs run as the `postgres`
account (or `nobody` where there is none), which owns the cluster directory.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

SUPERUSER = "journeys"
DEFAULT_PORT = 5433
_VERSIONED_BIN = re.compile(r"/(\d+)/bin$")


def bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's /usr/lib/postgresql/<major>/bin
    (newest first), else the source build's default prefix."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(m.group(1)) if (m := _VERSIONED_BIN.search(str(path))) else 0,
        reverse=True,
    )
    for candidate in [*debian, Path("/usr/local/pgsql/bin")]:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The account PostgreSQL's programs run as, or None to run them as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is no `postgres` or `nobody` account")


class Cluster:
    """One cluster in `root`: data in root/data, the unix socket and the log in root itself.
    Listens on 127.0.0.1:`port` with trust authentication for the `journeys` superuser."""

    def __init__(self, root: Path, port: int, *, durable: bool = True) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql); "
                "`make setup` installs it"
            )
        self.bin = found
        self.root = root.resolve()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = port
        self._durable = durable
        self._account = _run_as()

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self._account is not None:
            extra = {
                "user": self._account.pw_uid,
                "group": self._account.pw_gid,
                "extra_groups": [],
            }
        result = subprocess.run(
            [str(self.bin / program), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **extra,
        )
        if check and result.returncode != 0:
            hint = (
                f"\n(it ran as {self._account.pw_name}: {self.root} and every directory above "
                "it must be searchable by that account)"
                if self._account is not None
                else ""
            )
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}{hint}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            return "postgres.log:\n" + "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def init(self) -> None:
        """Creates the cluster unless root/data already holds one."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
        self.root.chmod(0o700)
        if (self.data / "PG_VERSION").exists():
            return
        args = ["-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8"]
        self._pg("initdb", *args, "--locale=C", *([] if self._durable else ["--no-sync"]))

    def start(self) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.root}",  # the socket lives here, not in /var/run/postgresql
        ]
        if not self._durable:  # a throw-away test cluster: no need to survive a power cut
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = ["-l", str(self.log)]
        self._pg(
            "pg_ctl", "-D", str(self.data), *log, "-w", "-t", "60", "-o", " ".join(options), "start"
        )

    def running(self) -> bool:
        return self._pg("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self) -> None:
        if self.running():
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """Creates the database (owned by the superuser) and returns its URL."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()
        if not (exist_ok and exists):
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs SQL as the superuser; returns the unaligned, tuples-only output."""
        args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        host = ["-h", str(self.root), "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        return self._pg("psql", *host, *args).stdout


def run(root: Path, port: int, command: Sequence[str]) -> int:
    """Starts the cluster in `root` (creating it and the `journeys` database the first time),
    runs `command` with JOURNEYS_DATABASE_URL pointing at it, and stops the cluster after."""
    # Until the command runs, SIGTERM unwinds like Ctrl-C so a started cluster is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    cluster = Cluster(root, port)
    cluster.init()
    if cluster.running():  # e.g. `make run-postgres` in another terminal: use it, leave it
        return _run_against(cluster, command)
    cluster.start()
    try:
        return _run_against(cluster, command)
    finally:
        print("stopping PostgreSQL", flush=True)
        cluster.stop()


def _run_against(cluster: Cluster, command: Sequence[str]) -> int:
    url = cluster.create_database("journeys", exist_ok=True)
    print(f"PostgreSQL ({cluster.bin}) on {url}, data in {cluster.data}", flush=True)
    child = subprocess.Popen(list(command), env={**os.environ, "JOURNEYS_DATABASE_URL": url})

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)  # the child stops gracefully; the cluster stops after it

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    return child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bindir", help="print the directory of initdb and pg_ctl")
    serve = commands.add_parser("run", help="run a command against a cluster in DIR")
    serve.add_argument("dir", type=Path)
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("JOURNEYS_POSTGRES_PORT") or DEFAULT_PORT),
        help=f"TCP port on 127.0.0.1 (default $JOURNEYS_POSTGRES_PORT or {DEFAULT_PORT})",
    )
    serve.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command to run")
    args = parser.parse_args(argv)
    if args.command == "bindir":
        found = bindir()
        if found is None:
            return 1
        print(found)
        return 0
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        parser.error("run needs a command after --")
    return run(args.dir, args.port, command)


if __name__ == "__main__":
    sys.exit(main())
