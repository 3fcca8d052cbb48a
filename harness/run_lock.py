"""One owner per run folder: `run.lock`, held while a run or a resume writes records.

The lock is an flock on results/<run>/run.lock, whose text names the holder (pid,
host, start time, command). The kernel drops an flock when its process dies,
however it dies, so a lock left by a killed run is simply taken over; a live
holder's lock refuses the second writer with a line that names it. The file is
removed when its holder finishes.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from harness.errors import UserError

LOCK = "run.lock"
_held: dict[Path, int] = {}  # run folders this process holds, and how many blocks hold each


class RunFolderBusy(UserError):
    """Another live process holds the run folder."""


@contextmanager
def hold(run_dir: Path) -> Iterator[None]:
    """Own `run_dir` for the block: raises RunFolderBusy (naming the holder) if another live
    process owns it, UserError if the folder cannot be written. Blocks nest: the command holds
    the folder from reading its records to the end, and the runner holds it while it writes."""
    path = (Path(run_dir) / LOCK).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = _acquire(path)
    _held[path] = 1
    try:
        yield
    finally:
        del _held[path]
        try:
            path.unlink()  # while still held, so no one takes a lock on a file about to vanish
        except OSError:
            pass
        os.close(fd)


def _acquire(path: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(f"{path.parent}: cannot write in the run folder ({err.strerror or err}); "
                            "nothing was run") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunFolderBusy(f"{path.parent}: in use by {holder(path)}; wait for it to finish, or "
                                    "end that process (a lock left by a dead process is taken over)") from None
            raise UserError(f"{path}: cannot lock ({err.strerror or err}); nothing was run") from None
        if _same_file(fd, path):  # not unlinked by a holder finishing between our open and flock
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_me()).encode())
    except OSError as err:
        path.unlink(missing_ok=True)  # held, so no one else is using it
        os.close(fd)
        raise UserError(f"{path.parent}: cannot write in the run folder ({err.strerror or err}); "
                        "nothing was run") from None
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _me() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": _command()}


def _command() -> str:
    args = sys.argv[1:]
    return " ".join(["python -m harness", *args] if sys.argv[0].endswith("__main__.py") else sys.argv)


def holder(path: Path) -> str:
    """Who holds the lock at `path`, in words, from what it wrote there."""
    try:
        info = json.loads(path.read_text())
        return (f"pid {info['pid']} on {info['host']} since {info['started']}"
                + (f" ({info['command']})" if info.get("command") else ""))
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file does not say which)"
