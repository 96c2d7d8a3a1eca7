"""`budgetbridge serve --demo` as a new user runs it: it prints where the dashboard is and a sign-in link per
demo user for the address it listens on, and the dashboard answers there with the printed token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_demo_prints_sign_in_links_for_its_own_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETBRIDGE_")}
    env["BUDGETBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        printed: list[str] = []
        for line in server.stdout:  # the output is the event: each line as the server prints it
            printed.append(line)
            if "Uvicorn running on" in line:
                break
        text = "".join(printed)
        base = f"http://127.0.0.1:{port}"
        assert f"dashboard at {base}/ " in text, text
        links = [ln.split("sign in directly: ", 1)[1].strip() for ln in printed if "sign in directly: " in ln]
        assert [link.partition("#token=")[0] for link in links] == [f"{base}/"] * 3
        token = links[1].partition("#token=")[2]  # the accounting approver
        page = httpx.get(f"{base}/", timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        viewer = httpx.post(f"{base}/graphql", json={"query": "{ viewer { name isAccountingApprover } }"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert viewer.json() == {"data": {"viewer": {"name": "Alex Rivera", "isAccountingApprover": True}}}
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
