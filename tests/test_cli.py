"""The admin CLI as scripts use it: real `budgetbridge` processes, --json output, one-line failures."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from app import cli
from tests.support import JWT_SECRET


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETBRIDGE_")}
    base.update({"BUDGETBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
                 "BUDGETBRIDGE_JWT_SECRET": JWT_SECRET, **env})
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=base, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


def run_json(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    result = run(tmp_path, "--json", *args, **(env or {}))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    return dict(json.loads(lines[0]))


def test_a_script_sets_up_a_company_user_and_token(tmp_path: Path) -> None:
    company = run_json(tmp_path, "company", "create", "--name", "Acme Builders", "--currency", "cad")
    user = run_json(tmp_path, "user", "create", "--company", str(company["id"]), "--email", "PM@acme.test",
                    "--name", "Pat", "--company-admin", "--approver", "--erp-permission", "STANDARD")
    claims = jwt.decode(str(user["token"]), JWT_SECRET, algorithms=["HS256"], issuer="budgetbridge")
    assert claims["sub"] == user["id"] and claims["company"] == company["id"]
    token = run_json(tmp_path, "token", "--user", str(user["id"]), "--expires-in", "60")
    short = jwt.decode(str(token["token"]), JWT_SECRET, algorithms=["HS256"], issuer="budgetbridge")
    assert short["exp"] - short["iat"] == 60


def test_set_erp_checks_the_connector_options_before_saving(tmp_path: Path) -> None:
    company = run_json(tmp_path, "company", "create", "--name", "Acme")
    refused = run(tmp_path, "company", "set-erp", "--company", str(company["id"]), "--connector", "webhook")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "url" in refused.stderr
    unknown = run(tmp_path, "company", "set-erp", "--company", str(company["id"]), "--connector", "quickbooks")
    assert unknown.returncode == 2 and "unknown ERP connector" in unknown.stderr
    ok = run_json(tmp_path, "company", "set-erp", "--company", str(company["id"]), "--connector", "none")
    assert ok["connector"] == "none"


def test_refusals_are_one_clear_line(tmp_path: Path) -> None:
    missing = run(tmp_path, "user", "create", "--company", "co_nope", "--email", "a@b.c", "--name", "A")
    assert missing.returncode == 2 and missing.stderr == "budgetbridge: no company co_nope\n"
    as_json = run(tmp_path, "--json", "token", "--user", "usr_nope")
    assert as_json.returncode == 2 and json.loads(as_json.stdout) == {"error": "no user usr_nope"}


@pytest.mark.parametrize(("env", "needle"), [
    ({"BUDGETBRIDGE_DATABASE_URL": "mysql://root@localhost/x"}, "BUDGETBRIDGE_DATABASE_URL"),
    ({"BUDGETBRIDGE_JWT_SECRET": "short"}, "BUDGETBRIDGE_JWT_SECRET"),
    ({"BUDGETBRIDGE_BROADCAST_URL": "kafka"}, "BUDGETBRIDGE_BROADCAST_URL"),
    ({"BUDGETBRIDGE_ERP_CONNECTOR": "sap"}, "BUDGETBRIDGE_ERP_CONNECTOR"),
    ({"BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS": "-1"}, "BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS"),
])
def test_bad_settings_fail_at_start_with_one_line(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    result = run(tmp_path, "serve", "--port", "1", **env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and needle in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_without_a_jwt_secret_unless_demo(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--port", "1", BUDGETBRIDGE_JWT_SECRET="")
    assert result.returncode == 2
    assert "BUDGETBRIDGE_JWT_SECRET" in result.stderr and result.stderr.count("\n") == 1


def test_several_server_processes_need_a_shared_broadcast(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--workers", "2", "--port", "1")
    assert result.returncode == 2 and "memory://" in result.stderr and result.stderr.count("\n") == 1


def test_tokens_live_at_most_the_maximum_and_a_longer_one_is_refused(tmp_path: Path) -> None:
    short = {"BUDGETBRIDGE_MAX_TOKEN_SECONDS": "120"}
    company = run_json(tmp_path, "company", "create", "--name", "Acme", env=short)
    user = run_json(tmp_path, "user", "create", "--company", str(company["id"]), "--email", "a@acme.test",
                    "--name", "A", env=short)
    created = jwt.decode(str(user["token"]), JWT_SECRET, algorithms=["HS256"], issuer="budgetbridge")
    assert created["exp"] - created["iat"] == 120
    default = run_json(tmp_path, "token", "--user", str(user["id"]), env=short)
    claims = jwt.decode(str(default["token"]), JWT_SECRET, algorithms=["HS256"], issuer="budgetbridge")
    assert claims["exp"] - claims["iat"] == 120

    too_long = run(tmp_path, "token", "--user", str(user["id"]), "--expires-in", "121", **short)
    assert too_long.returncode == 2 and too_long.stdout == ""
    assert too_long.stderr == (
        "budgetbridge: --expires-in must be at most 120 seconds (BUDGETBRIDGE_MAX_TOKEN_SECONDS)\n"
    )
    year_9999 = run(tmp_path, "--json", "token", "--user", str(user["id"]), "--expires-in", "250000000000")
    assert year_9999.returncode == 2
    assert json.loads(year_9999.stdout) == {
        "error": "--expires-in must be at most 2592000 seconds (BUDGETBRIDGE_MAX_TOKEN_SECONDS)"
    }


def test_access_commands_refuse_in_one_line(tmp_path: Path) -> None:
    company = run_json(tmp_path, "company", "create", "--name", "Acme")
    user = run_json(tmp_path, "user", "create", "--company", str(company["id"]), "--email", "a@acme.test",
                    "--name", "A")
    for command in (("user", "disable"), ("user", "enable"), ("token", "revoke")):
        missing = run(tmp_path, *command, "--user", "usr_nope")
        assert missing.returncode == 2 and missing.stderr == "budgetbridge: no user usr_nope\n", command
    mixed = run(tmp_path, "token", "revoke", "--user", str(user["id"]), "--expires-in", "60")
    assert mixed.returncode == 2 and mixed.stderr == "budgetbridge: --expires-in does not go with `token revoke`\n"
    disabled = run_json(tmp_path, "user", "disable", "--user", str(user["id"]))
    again = run(tmp_path, "user", "disable", "--user", str(user["id"]))
    assert (again.returncode, again.stdout) == (0, f"user {user['id']} is disabled\n")
    kept = run_json(tmp_path, "user", "disable", "--user", str(user["id"]))
    assert kept == disabled and kept["disabled"] is True  # disabling twice keeps the first time
    enabled = run(tmp_path, "user", "enable", "--user", str(user["id"]))
    assert (enabled.returncode, enabled.stdout) == (0, f"user {user['id']} is enabled\n")
    revoked = run(tmp_path, "token", "revoke", "--user", str(user["id"]))
    assert revoked.returncode == 0
    assert revoked.stdout.startswith(f"tokens of {user['id']} issued before ") and "no longer work" in revoked.stdout


# --- usage errors, serve's address, migrate's progress ------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["--json", "user", "create", "--company"],
    ["user", "create", "--company", "co_x", "--json"],  # --json after the command counts too
    ["erp", "requests", "--status", "LOST", "--json"],
    ["--json", "nonsense"],
])
def test_usage_errors_are_one_json_object_with_json(tmp_path: Path, args: list[str]) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    answer = json.loads(lines[0])
    assert set(answer) == {"error", "usage"} and answer["usage"].startswith("usage: budgetbridge")
    assert not (tmp_path / "cli.db").exists()  # refused before anything was opened


def test_usage_errors_without_json_are_argparse_text(tmp_path: Path) -> None:
    result = run(tmp_path, "user", "show")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: budgetbridge user show")
    assert result.stderr.endswith("budgetbridge: the following arguments are required: --user\n")


@pytest.mark.parametrize(("args", "needle"), [
    (["--port", "99999"], "argument --port: 99999 is not a port number (1-65535)"),
    (["--port", "0"], "argument --port: 0 is not a port number (1-65535)"),
    (["--port", "http"], "argument --port: 'http' is not a port number (1-65535)"),
    (["--host", "bad host"], "argument --host: 'bad host' is not an IP address or host name"),
    (["--host=-lead.example"], "is not an IP address or host name"),
    (["--host", "a..b"], "is not an IP address or host name"),
])
def test_serve_refuses_a_bad_port_or_host_before_starting(tmp_path: Path, args: list[str], needle: str) -> None:
    result = run(tmp_path, "--json", "serve", *args)
    assert result.returncode == 2 and needle in json.loads(result.stdout)["error"]
    assert not (tmp_path / "cli.db").exists()


@pytest.mark.parametrize(("host", "bound"), [
    ("0.0.0.0", "0.0.0.0"), ("::", "::"), ("[::1]", "::1"), ("localhost", "localhost"),
    ("api.internal.example", "api.internal.example"),
])
def test_serve_takes_ip_addresses_and_host_names(host: str, bound: str) -> None:
    parsed = cli.parse(["serve", "--host", host, "--port", "65535"])
    assert (parsed.host, parsed.port) == (bound, 65535)


def run_on_a_terminal(tmp_path: Path, *args: str) -> tuple[int, str]:
    """`budgetbridge` with its stdout on a pseudo-terminal, as an operator runs it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETBRIDGE_")}
    base["BUDGETBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    controller, terminal = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=base, cwd=tmp_path,
                          stdout=terminal, stderr=subprocess.PIPE) as process:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(controller)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    return process.returncode, b"".join(chunks).decode().replace("\r\n", "\n")


def test_migrate_shows_each_revision_on_a_terminal(tmp_path: Path) -> None:
    revisions = sorted(p.stem for p in (Path(__file__).parent.parent / "persistence/migrations/versions").glob("0*.py"))
    _, shown = run_on_a_terminal(tmp_path, "migrate")
    lines = shown.splitlines()
    assert lines[-1] == "database schema is up to date"
    total = len(revisions)
    assert [line.split(" ")[:2] for line in lines[:-1]] == [
        [f"[{n}/{total}]", name.split("_")[0]] for n, name in enumerate(revisions, start=1)]
    assert lines[0] == f"[1/{total}] 0001 initial schema"
    _, again = run_on_a_terminal(tmp_path, "migrate")  # nothing left to apply
    assert again == "database schema is up to date\n"


def test_migrate_in_a_script_prints_only_its_result(tmp_path: Path) -> None:
    piped = run(tmp_path, "migrate")
    assert piped.returncode == 0 and piped.stdout == "database schema is up to date\n"
