"""Who holds the SQLite suite database's write lock, and letting it go.

The SQLite suite shares one database file. A test that leaves a write transaction open (a connection that was
neither committed, rolled back nor closed) makes every later write wait the whole busy timeout and fail with
"database is locked": one leak turns into a hundred failures an hour later, none of them naming the culprit.
conftest checks after each test that the file takes a writer; when it does not, this module names the open
transactions in this process (and who refers to them), rolls them back so the rest of the suite runs, and
the test that leaked fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite


def writer_refused(path: str, wait_seconds: float) -> str | None:
    """Why a new connection cannot begin writing within `wait_seconds` (None: it can). SQLite's own busy wait,
    in a thread so the event loop keeps running the clean-ups that may still be finishing."""
    try:
        probe = sqlite3.connect(path, timeout=wait_seconds, isolation_level=None)
    except sqlite3.Error as exc:
        return f"cannot open it: {exc}"
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return None
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        probe.close()


def _owners(obj: Any, depth: int = 4) -> list[str]:
    """A few steps up the chain of objects that refer to `obj`: which unit of work, engine or task kept it."""
    chain: list[str] = []
    current = obj
    for _ in range(depth):
        referrers = [r for r in gc.get_referrers(current) if not isinstance(r, (list, tuple)) or len(r) < 50]
        referrers = [r for r in referrers if type(r).__name__ not in ("frame",)]
        if not referrers:
            break
        current = referrers[0]
        chain.append(type(current).__qualname__ + (f" {current!r}"[:160] if isinstance(current, asyncio.Task) else ""))
    return chain


def release_in_process_writers() -> list[str]:
    """Roll back every aiosqlite connection of this process that is inside a transaction (through its own
    thread, as aiosqlite runs everything), and describe each one.

    The live hub's collector guard (app.live.CollectorGuard) freezes what is alive when it delivers, and
    gc.get_objects() does not list frozen objects: unfrozen first, so a dropped connection frozen with its
    transaction open is found too."""
    gc.unfreeze()
    found: list[str] = []
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, aiosqlite.Connection):
                continue
        except ReferenceError:  # a weak proxy whose object is gone
            continue
        raw = obj._connection
        if raw is None or not raw.in_transaction:
            continue
        found.append(f"{obj!r} in a transaction, kept by: {' <- '.join(_owners(obj))}")
        obj._tx.put_nowait((None, raw.rollback))
    return found


@dataclass(frozen=True)
class OtherProcess:
    pid: int
    command: str
    ours: bool  # started by this test session (a descendant of this process)

    def __str__(self) -> str:
        return f"pid {self.pid}{' (started by this session)' if self.ours else ''}: {self.command[:300]}"


def _parent(pid: int) -> int | None:
    try:
        # The command name (field 2) may hold spaces: the parent is the 2nd field after its closing ")".
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descends_from_us(pid: int) -> bool:
    me, current = os.getpid(), _parent(pid)
    while current not in (None, 0, 1):
        if current == me:
            return True
        current = _parent(current)
    return False


def other_processes_with(path: str) -> list[OtherProcess]:
    """The other processes that have the database file open (a server or worker a test started and left
    running holds its transactions in its own process), with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            opened = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
            if not any(name.startswith(path) for name in opened):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        pid = int(entry.name)
        found.append(OtherProcess(pid, command, _descends_from_us(pid)))
    return found


def stop_our_processes(processes: list[OtherProcess]) -> None:
    """Kill what this session started and a test left running with the file open: the test that left it
    fails; the tests after it should not."""
    for process in processes:
        if process.ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)


def raw_connections_in_transaction() -> list[str]:
    """sqlite3 connections of this process inside a transaction that no aiosqlite connection owns (a sync
    engine, a direct sqlite3 use), with who keeps them."""
    found = []
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, sqlite3.Connection) or not obj.in_transaction:
                continue
        except (ReferenceError, sqlite3.ProgrammingError):  # a dead proxy, a closed connection
            continue
        found.append(f"{obj!r} kept by: {' <- '.join(_owners(obj))}")
    return found


def file_locks(path: str) -> list[str]:
    """The kernel's record locks (/proc/locks) on the database, its WAL and its shared-memory index: SQLite
    locks with them, so the pid there is the holder's, whatever it did with the file's name."""
    inodes = {}
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            stat = os.stat(path + suffix)
            inodes[f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"] = suffix or "db"
    lines = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            device_inode = next((f for f in fields if f.count(":") == 2), None)
            if device_inode in inodes:
                lines.append(f"{inodes[device_inode]}: {line} (this process is {os.getpid()})")
    return lines


def describe_threads() -> list[str]:
    lines = []
    for thread_id, frame in sys._current_frames().items():
        stack = traceback.extract_stack(frame, limit=8)
        lines.append(f"thread {thread_id}: " + " / ".join(f"{f.name}:{f.lineno}" for f in stack))
    return lines


def describe_tasks() -> list[str]:
    lines = []
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=6)
        where = " / ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
        lines.append(f"{task.get_name()} {task.get_coro()!r}: {where}")
    return lines
