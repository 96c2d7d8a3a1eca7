"""The notification commands as scripts use them: `company set-chat` with its URL rules, `notify digest`,
`notify outbox`, and the notification settings refused at start with one line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from resolvers.context import Services
from tests.erp.workflow import add_line, lock_and_send
from tests.notify.smtp_server import running_smtp
from tests.notify.support import outbox_of
from tests.support import JWT_SECRET, make_tenant
from tests.test_cli import run, run_json

ROOT = Path(__file__).resolve().parents[2]


def test_set_chat_refuses_private_addresses_unless_allowed(tmp_path: Path) -> None:
    company = str(run_json(tmp_path, "company", "create", "--name", "Acme")["id"])
    for url, needle in (  # each rule in tests/erp/test_url_safety.py; here: what the command says
        ("http://127.0.0.1:9/hook", "must use https"),
        ("https://169.254.169.254/latest", "non-public address (169.254.169.254)"),
    ):
        refused = run(tmp_path, "company", "set-chat", "--company", company, "--url", url)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.count("\n") == 1 and needle in refused.stderr and "--url" in refused.stderr
    saved = run_json(
        tmp_path, "company", "set-chat", "--company", company, "--url", "http://127.0.0.1:9/hook",
        "--allow-private-network",
    )
    assert saved == {"id": company, "chat": "http://127.0.0.1:9/hook", "allowPrivateNetwork": True}
    assert run_json(tmp_path, "company", "set-chat", "--company", company, "--remove") == {"id": company, "chat": None}
    missing = run(tmp_path, "company", "set-chat", "--company", "co_nope", "--url", "https://10.0.0.1/x",
                  "--allow-private-network")
    assert missing.returncode == 2 and missing.stderr == "budgetbridge: no company co_nope\n"


def test_notify_commands_with_nothing_to_do(tmp_path: Path) -> None:
    company = str(run_json(tmp_path, "company", "create", "--name", "Acme")["id"])
    assert run_json(tmp_path, "notify", "digest") == {"digests": 0, "handled": 0}
    assert run_json(tmp_path, "notify", "outbox", "--company", company) == {"notifications": []}
    text = run(tmp_path, "notify", "digest", "--company", company)
    assert text.returncode == 0 and "nothing waits" in text.stdout


@pytest.mark.parametrize(("env", "needle"), [
    ({"BUDGETBRIDGE_SMTP_URL": "http://mail.example.com"}, "BUDGETBRIDGE_SMTP_URL"),
    ({"BUDGETBRIDGE_MAIL_FROM": "nobody"}, "BUDGETBRIDGE_MAIL_FROM"),
    ({"BUDGETBRIDGE_PUBLIC_URL": "budgets.example.com"}, "BUDGETBRIDGE_PUBLIC_URL"),
    ({"BUDGETBRIDGE_DIGEST_HOUR": "25"}, "BUDGETBRIDGE_DIGEST_HOUR"),
    ({"BUDGETBRIDGE_DIGEST_TIMEZONE": "Middle/Earth"}, "BUDGETBRIDGE_DIGEST_TIMEZONE"),
    ({"BUDGETBRIDGE_POSTING_REMINDER_HOURS": "0"}, "BUDGETBRIDGE_POSTING_REMINDER_HOURS"),
    ({"BUDGETBRIDGE_NOTIFY_LEASE_SECONDS": "10"}, "BUDGETBRIDGE_NOTIFY_LEASE_SECONDS"),
])
def test_bad_notification_settings_fail_at_start_with_one_line(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    result = run(tmp_path, "serve", "--port", "1", **env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and needle in result.stderr
    assert "Traceback" not in result.stderr


async def test_notify_digest_writes_and_delivers_todays_digest_once(services: Services) -> None:
    tenant = await make_tenant(services)
    await add_line(tenant, "03-300", "L", "1200.00")
    await lock_and_send(tenant)
    async with running_smtp() as mail:
        env = {
            "BUDGETBRIDGE_DATABASE_URL": services.db.url,
            "BUDGETBRIDGE_JWT_SECRET": JWT_SECRET,
            "BUDGETBRIDGE_SMTP_URL": mail.url,
            "BUDGETBRIDGE_PUBLIC_URL": "https://budgets.example.com",
        }

        async def cli(*args: str) -> dict[str, object]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app.cli", "--json", *args, env=env, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            return dict(json.loads(out))

        first = await cli("notify", "digest", "--company", tenant.company_id)
        assert first == {"digests": 1, "handled": 2}  # the digest, and the arrival still in the outbox
        assert await cli("notify", "digest", "--company", tenant.company_id) == {"digests": 0, "handled": 0}
        listed = await cli("notify", "outbox", "--company", tenant.company_id)
    kinds = sorted(str(m.message["X-BudgetBridge-Notification"]) for m in mail.received)
    assert kinds == ["DAILY_DIGEST", "REQUEST_ARRIVED"]
    assert {m.recipients[0] for m in mail.received} == {"approver@example.com"}
    rows = await outbox_of(services, tenant.company_id)
    items = listed["notifications"]
    assert isinstance(items, list)
    assert sorted((n["kind"], n["status"]) for n in items) == sorted((r.kind, r.status) for r in rows)
    assert {r.status for r in rows} == {"SENT"}
