"""ERP settings that cannot be turned against the server (issue 9, point 8).

* A webhook URL must be https and resolve to public addresses only, checked when the connection is saved
  and again when each connection is made (DNS rebinding), unless it was saved with --allow-private-network.
* What the integrator answers reaches users only in our own words with the HTTP status, or as the messages
  of an answer it signed: never a raw body.
* A drop folder is an absolute path to an existing directory the server can write (probed when saved),
  outside the system's own trees.

Every refusal is the one clear message and leaves the company's connection as it was (on whichever engine the
suite runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpcore
import pytest
from sqlalchemy import select

from app import admin
from erp.base import ConnectorConfigError, ConnectorError
from erp.files import check_folder
from erp.url_safety import PublicOnlyBackend, UnsafeAddressError
from erp.webhook import WebhookConnector
from persistence.tables import companies
from resolvers.context import Services
from tests.erp.test_webhook import SECRET, create_batch, job
from tests.erp.webhook_server import Integrator, Reply, running_integrator
from tests.support import make_tenant, snapshot

PUBLIC = "93.184.216.34"  # a global unicast address (never connected to in these tests)


def resolver(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve


# --- saving a webhook connection ---------------------------------------------------------------------------


async def connection_of(services: Services, company_id: str) -> tuple[Any, ...]:
    async with services.db.read() as conn:
        row = (await conn.execute(select(companies.c.erp_connector, companies.c.erp_settings)
                                  .where(companies.c.id == company_id))).one()
    return tuple(row)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "(127.0.0.1)"),
        ("https://127.8.9.10:8443/hook", "(127.8.9.10)"),
        ("https://10.0.0.5/hook", "(10.0.0.5)"),
        ("https://172.16.0.1/hook", "(172.16.0.1)"),
        ("https://172.31.255.254/hook", "(172.31.255.254)"),
        ("https://192.168.1.20/hook", "(192.168.1.20)"),
        ("https://169.254.169.254/latest/meta-data/", "(169.254.169.254)"),
        ("https://[::1]/hook", "(::1)"),
        ("https://[fc00::1]/hook", "(fc00::1)"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "(fd00:ec2::254)"),
        ("https://[fe80::1]/hook", "(fe80::1)"),
        ("https://[::ffff:169.254.169.254]/", "(::ffff:a9fe:a9fe)"),
        ("https://0.0.0.0/hook", "(0.0.0.0)"),
        ("https://[::]/hook", "(::)"),
        ("https://224.0.0.1/hook", "(224.0.0.1)"),
        ("https://localhost:8443/hook", "'localhost' is a loopback"),  # a name that resolves to 127.0.0.1
    ],
)
async def test_a_webhook_url_that_reaches_into_our_network_is_refused_and_nothing_is_saved(
    services: Services, url: str, reason: str
) -> None:
    tenant = await make_tenant(services)  # connected to the embedded ledger: that must stay so
    before = await snapshot(services.db, tenant.company_id)

    async with services.db.unit_of_work() as uow:
        with pytest.raises(admin.AdminError) as refused:
            await admin.set_company_connector(uow, tenant.company_id, "webhook",
                                              {"url": url, "secret": SECRET})
        await uow.commit()

    message = str(refused.value)
    assert message.startswith("the option 'url' is refused: the host ")
    assert reason in message
    assert message.endswith("; use --allow-private-network if the server should call it anyway")
    assert await snapshot(services.db, tenant.company_id) == before
    assert await connection_of(services, tenant.company_id) == ("embedded", {})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/bb", "the option 'url' must use https (plain http is accepted only with "
                                        "--allow-private-network)"),
        ("http://127.0.0.1:8080/bb", "the option 'url' must use https"),
        ("ftp://hooks.example.com/bb", "the option 'url' must be an https:// URL, not 'ftp://hooks.example.com/bb'"),
        ("file:///etc/passwd", "the option 'url' must be an https:// URL"),
    ],
)
async def test_a_webhook_url_that_is_not_https_is_refused_and_nothing_is_saved(
    services: Services, url: str, message: str
) -> None:
    tenant = await make_tenant(services)
    before = await snapshot(services.db, tenant.company_id)

    async with services.db.unit_of_work() as uow:
        with pytest.raises(admin.AdminError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            await admin.set_company_connector(uow, tenant.company_id, "webhook",
                                              {"url": url, "secret": SECRET})
        await uow.commit()

    assert await snapshot(services.db, tenant.company_id) == before


async def test_allow_private_network_is_saved_with_the_connection(services: Services) -> None:
    tenant = await make_tenant(services, connector=None)
    options = {"url": "http://127.0.0.1:8080/bb", "secret": SECRET, "allow_private_network": True}
    async with services.db.unit_of_work() as uow:
        await admin.set_company_connector(uow, tenant.company_id, "webhook", options)
        await uow.commit()
    assert await connection_of(services, tenant.company_id) == ("webhook", options)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETBRIDGE_")}
    env["BUDGETBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


def test_set_erp_refuses_a_metadata_url_in_one_line_and_takes_allow_private_network(tmp_path: Path) -> None:
    created = cli(tmp_path, "--json", "company", "create", "--name", "Acme")
    company = created.stdout.split('"id":"')[1].split('"')[0]
    webhook = ["company", "set-erp", "--company", company, "--connector", "webhook", "--secret", SECRET]

    refused = cli(tmp_path, *webhook, "--url", "https://169.254.169.254/latest/meta-data/")
    plain = cli(tmp_path, *webhook, "--url", "http://127.0.0.1:9/hook")
    allowed = cli(tmp_path, "--json", *webhook, "--url", "http://127.0.0.1:9/hook", "--allow-private-network")

    assert refused.returncode == 2 and refused.stderr == (
        "budgetbridge: the option 'url' is refused: the host '169.254.169.254' is a loopback, private, link-local "
        "or otherwise non-public address (169.254.169.254); use --allow-private-network if the server should "
        "call it anyway\n"
    )
    assert plain.returncode == 2 and "must use https" in plain.stderr and plain.stderr.count("\n") == 1
    assert allowed.returncode == 0, allowed.stderr
    assert '"options":["allow_private_network","secret","url"]' in allowed.stdout


# --- at connect time ---------------------------------------------------------------------------------------


async def test_a_name_re_pointed_into_our_network_after_saving_is_refused_when_connecting() -> None:
    """DNS rebinding: the name resolved to a public address when the connection was saved, and to the
    loopback integrator when the export connects. The connection is refused; the integrator gets nothing."""
    async with running_integrator() as integrator:
        answers = iter([[PUBLIC], ["127.0.0.1"]])

        async def rebinding(host: str, port: int) -> Sequence[str]:
            assert host == "integrator.example.com"
            return next(answers)

        webhook = WebhookConnector({"url": f"https://integrator.example.com:{integrator.port}/hook", "secret": SECRET},
                                   resolve=rebinding)
        try:
            await webhook.check_settings()  # saved: public then
            with pytest.raises(ConnectorError) as refused:
                await webhook.export(create_batch())
        finally:
            await webhook.aclose()

    assert refused.value.retryable is False
    assert str(refused.value) == (
        "the integrator's URL is refused: the host 'integrator.example.com' is a loopback, private, link-local or "
        "otherwise non-public address (127.0.0.1); use --allow-private-network if the server should call it anyway"
    )
    assert integrator.received == []


async def test_a_stored_private_address_is_refused_at_connect_time_too() -> None:
    """A connection stored without the check (saved before it existed, or edited in the database) cannot
    reach the loopback integrator either: the connect-time check does not rely on the save-time one."""
    async with running_integrator() as integrator:
        webhook = WebhookConnector({"url": f"https://127.0.0.1:{integrator.port}/hook", "secret": SECRET})
        try:
            with pytest.raises(ConnectorError, match=r"refused: .*\(127\.0\.0\.1\)"):
                await webhook.export(create_batch())
            with pytest.raises(ConnectorError, match="refused"):
                await webhook.sync_job(job())
        finally:
            await webhook.aclose()
    assert integrator.received == []


class Recording(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded")


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """The backend resolves once and connects to that address: the name is not resolved again by the client."""
    inner = Recording()
    backend = PublicOnlyBackend(resolver({"erp.example.com": [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]}), inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("erp.example.com", 443, timeout=1)
    assert inner.hosts == [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]  # each checked address in turn


@pytest.mark.parametrize("addresses", [["10.0.0.7"], [PUBLIC, "169.254.169.254"], ["::1"], ["fd12:3456::1"]])
async def test_any_private_address_refuses_the_connection_before_connecting(addresses: list[str]) -> None:
    inner = Recording()
    backend = PublicOnlyBackend(resolver({"erp.example.com": addresses}), inner)
    with pytest.raises(UnsafeAddressError):
        await backend.connect_tcp("erp.example.com", 443, timeout=1)
    assert inner.hosts == []


async def test_a_name_that_does_not_resolve_is_unreachable_not_unsafe() -> None:
    backend = PublicOnlyBackend(resolver({}), Recording())
    with pytest.raises(httpcore.ConnectError, match="cannot be resolved"):
        await backend.connect_tcp("gone.example.com", 443, timeout=1)


async def test_check_settings_resolves_the_name_when_saved() -> None:
    names = resolver({"bridge.example.com": [PUBLIC], "inside.example.com": ["10.1.2.3"]})
    good = WebhookConnector({"url": "https://bridge.example.com/bb", "secret": SECRET}, resolve=names)
    bad = WebhookConnector({"url": "https://inside.example.com/bb", "secret": SECRET}, resolve=names)
    private = WebhookConnector({"url": "https://inside.example.com/bb", "secret": SECRET,
                                "allow_private_network": True}, resolve=names)
    try:
        await good.check_settings()
        await private.check_settings()
        with pytest.raises(ConnectorConfigError, match=r"^the option 'url' is refused: .*\(10\.1\.2\.3\)"):
            await bad.check_settings()
    finally:
        for connector in (good, bad, private):
            await connector.aclose()


# --- what the integrator answers ---------------------------------------------------------------------------

LEAK = "db-password=hunter2 at 10.0.0.9"


@pytest.fixture
async def integrator() -> AsyncIterator[Integrator]:
    async with running_integrator() as server:
        yield server


@pytest.fixture
async def connector(integrator: Integrator) -> AsyncIterator[WebhookConnector]:
    webhook = WebhookConnector({**integrator.options, "secret": SECRET, "timeout_seconds": 5})
    yield webhook
    await webhook.aclose()


@pytest.mark.parametrize(
    ("reply", "message", "retryable"),
    [
        (Reply(422, {"message": LEAK}), "the integrator refused the create budget (HTTP 422)", False),
        (Reply(400, {"messages": [LEAK]}), "the integrator refused the create budget (HTTP 400)", False),
        (Reply(403, body=LEAK.encode()), "the integrator refused the create budget (HTTP 403)", False),
        (Reply(500, body=f"<html><pre>Traceback: {LEAK}</pre></html>".encode()), "the integrator failed (HTTP 500)",
         True),
        (Reply(503, {"error": LEAK}), "the integrator failed (HTTP 503)", True),
        (Reply(429, {"message": LEAK}), "the integrator asked to try again later (HTTP 429)", True),
        (Reply(200, body=f"root:x:0:0:{LEAK}".encode()), "the integrator answered HTTP 200 with a body that is not "
                                                          "JSON", False),
        (Reply(200, {"status": "failure", "messages": [LEAK]}), "the integrator reported a failure (HTTP 200); its "
                                                                 "answer was not signed, so its text is not shown",
         False),
        (Reply(200, {"status": LEAK}), "the integrator answered HTTP 200 with a status that is not success, "
                                       "accepted or failure", False),
    ],
    ids=["422-json", "400-messages", "403-text", "500-html", "503-error", "429", "200-text", "200-failure",
         "200-status"],
)
@pytest.mark.parametrize("signature", ["unsigned", "wrong-secret"])
async def test_an_answer_that_is_not_signed_reaches_users_only_in_our_words(
    integrator: Integrator, connector: WebhookConnector, reply: Reply, message: str, retryable: bool, signature: str
) -> None:
    if signature == "wrong-secret":
        integrator.secret = "someone-elses-secret-0123456789"
    integrator.reply(reply)

    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())

    assert str(failed.value) == message
    assert failed.value.retryable is retryable


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(422, {"message": "Cost code 03-300 unknown"}), "the integrator refused the create budget (HTTP 422): "
                                                               "Cost code 03-300 unknown"),
        (Reply(200, {"status": "failure", "messages": ["Job P-100 is closed", "Phase 09-900 is not set up"]}),
         "Job P-100 is closed; Phase 09-900 is not set up"),
    ],
)
async def test_the_messages_of_a_signed_answer_are_shown(
    integrator: Integrator, connector: WebhookConnector, reply: Reply, message: str
) -> None:
    integrator.secret = SECRET
    integrator.reply(reply)
    with pytest.raises(ConnectorError) as failed:
        await connector.export(create_batch())
    assert str(failed.value) == message


async def test_a_sync_job_failure_that_is_not_signed_is_told_in_our_words(
    integrator: Integrator, connector: WebhookConnector
) -> None:
    integrator.reply(Reply(200, {"status": "failure", "messages": [LEAK]}), Reply(400, {"error": LEAK}))
    with pytest.raises(ConnectorError) as reported:
        await connector.sync_job(job())
    with pytest.raises(ConnectorError) as refused:
        await connector.sync_job(job())
    assert str(reported.value) == ("the integrator could not sync the job (HTTP 200); its answer was not signed, so "
                                   "its text is not shown")
    assert str(refused.value) == "the integrator refused the sync job (HTTP 400)"


@pytest.mark.parametrize("reference", ["R" * 201, "JC-1\nInjected: line", "JC-\u0000", "   ", ["JC-1"]],
                         ids=["too-long", "newline", "nul", "blank", "list"])
async def test_an_erp_reference_that_is_not_an_identifier_is_not_kept(
    integrator: Integrator, connector: WebhookConnector, reference: Any
) -> None:
    integrator.reply(Reply(200, {"status": "success", "erpReference": reference}))
    receipt = await connector.export(create_batch())
    assert (receipt.erp_reference, receipt.deferred) == (None, False)  # written all the same


async def test_an_erp_job_id_that_does_not_fit_is_refused(integrator: Integrator, connector: WebhookConnector) -> None:
    integrator.reply(Reply(200, {"erpJobId": "J" * 101}), Reply(200, {"erpJobId": "J" * 100}))
    with pytest.raises(ConnectorError, match="erpJobId that is not a job id of at most 100 printable characters"):
        await connector.sync_job(job())
    assert await connector.sync_job(job()) == "J" * 100


# --- drop folders ------------------------------------------------------------------------------------------


async def save_drop_folder(services: Services, company_id: str, name: str, folder: str) -> None:
    options = {"drop_folder": folder, **({"cost_type_map": "L:1"} if name == "vista-csv" else {})}
    async with services.db.unit_of_work() as uow:
        await admin.set_company_connector(uow, company_id, name, options)
        await uow.commit()


@pytest.mark.parametrize("name", ["sage300-file", "vista-csv"])
@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("drop", "the option 'drop_folder' must be an absolute path (such as /srv/erp/drop), not 'drop'"),
        ("../srv/drop", "must be an absolute path"),
        ("/etc", "the option 'drop_folder' is refused: /etc is in the system directory /etc"),
        ("/etc/cron.d", "is in the system directory /etc"),
        ("/usr/local/share", "is in the system directory /usr"),
        ("/proc/self", "is in the system directory /proc"),
        ("/", "is in the system directory /"),
        ("{tmp}/missing", "the option 'drop_folder' is refused: the folder {tmp}/missing does not exist (create it "
                          "first)"),
        ("{tmp}/a-file", "the option 'drop_folder' is refused: {tmp}/a-file is a file, not a folder"),
        ("{tmp}/to-etc", "the option 'drop_folder' is refused: {tmp}/to-etc is in the system directory /etc"),
    ],
)
async def test_a_drop_folder_that_is_not_a_writable_directory_of_its_own_is_refused_and_nothing_is_saved(
    services: Services, tmp_path: Path, name: str, folder: str, message: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "to-etc").symlink_to("/etc")
    tenant = await make_tenant(services)
    before = await snapshot(services.db, tenant.company_id)

    with pytest.raises(admin.AdminError) as refused:
        await save_drop_folder(services, tenant.company_id, name, folder.format(tmp=tmp_path))

    assert message.format(tmp=tmp_path) in str(refused.value)
    assert await snapshot(services.db, tenant.company_id) == before
    assert await connection_of(services, tenant.company_id) == ("embedded", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "to-etc"]  # nothing created


@pytest.mark.parametrize("name", ["sage300-file", "vista-csv"])
async def test_a_writable_drop_folder_is_probed_and_saved(services: Services, tmp_path: Path, name: str) -> None:
    tenant = await make_tenant(services, connector=None)
    await save_drop_folder(services, tenant.company_id, name, str(tmp_path))
    assert (await connection_of(services, tenant.company_id))[0] == name
    assert list(tmp_path.iterdir()) == []  # the probe file was deleted


def probe_as_nobody(folder: Path) -> str:
    """check_folder's answer in a forked child that runs as `nobody` when the tests run as root (root writes
    anywhere, whatever the mode bits say)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into pytest
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                check_folder(folder)
                answer = "accepted"
            except ConnectorConfigError as exc:
                answer = str(exc)
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_a_drop_folder_the_server_cannot_write_is_refused() -> None:
    """The probe really writes: a directory the server's user cannot write is refused."""
    parent = Path(tempfile.mkdtemp(prefix="bb-probe-"))
    folder = parent / "read-only"
    folder.mkdir()
    try:
        os.chmod(parent, 0o755)
        os.chmod(folder, 0o555)
        assert probe_as_nobody(folder) == (
            f"the option 'drop_folder' is refused: the server cannot write to the folder {folder} (Permission denied)"
        )
        assert list(folder.iterdir()) == []
        os.chmod(folder, 0o777)
        assert probe_as_nobody(folder) == "accepted"
        assert list(folder.iterdir()) == []  # the probe was deleted
    finally:
        os.chmod(folder, 0o755)
        folder.rmdir()
        parent.rmdir()


async def test_a_stored_connection_that_no_longer_passes_is_no_connection(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved before these rules (or edited in the database): an http webhook without --allow-private-network, a
    relative drop folder. The company is not connected (sendBlockers says ERP_NOT_CONNECTED), warned once."""
    tenant = await make_tenant(services, connector=None)
    async with services.db.unit_of_work() as uow:
        await uow.connection.execute(companies.update().where(companies.c.id == tenant.company_id).values(
            erp_connector="webhook", erp_settings={"url": "http://10.0.0.5/bb", "secret": SECRET}))
        await uow.commit()
    query = "query($b: ID!) { erpConnection { connector } budget(id: $b) { sendBlockers { code } } }"
    caplog.set_level("WARNING", logger="budgetbridge.erp")

    first = await tenant.ok("admin", query, b=tenant.budget_id)
    second = await tenant.ok("admin", query, b=tenant.budget_id)

    for data in (first, second):
        assert data["erpConnection"] is None
        assert "ERP_NOT_CONNECTED" in [b["code"] for b in data["budget"]["sendBlockers"]]
    warnings = [r for r in caplog.records if r.name == "budgetbridge.erp"]
    assert [r.getMessage() for r in warnings] == [
        "ERP connector webhook is misconfigured (save it again with company set-erp): the option 'url' must use "
        "https (plain http is accepted only with --allow-private-network)"
    ]
    assert warnings[0].exc_info is None
