"""The suite's guard against a test that leaves the SQLite database write-locked (tests.sqlite_locks): it
sees the lock, names the process holding it and, when this session started that process, stops it."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from tests import sqlite_locks

HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO t VALUES (1)")
print("holding", flush=True)
sys.stdin.read()  # until killed
"""


async def test_a_writer_left_running_by_this_session_is_named_and_stopped(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.db")
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.close()
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"holding\n"
        assert sqlite_locks.writer_refused(path, 0) == "database is locked"
        (other,) = sqlite_locks.other_processes_with(path)
        assert other.pid == holder.pid and other.ours and "BEGIN IMMEDIATE" in other.command
        sqlite_locks.stop_our_processes([other])
        await asyncio.wait_for(holder.wait(), 30)
        assert sqlite_locks.writer_refused(path, 5) is None
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
