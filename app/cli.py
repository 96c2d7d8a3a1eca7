"""`budgetbridge`: the admin command line. With --json (anywhere on the line) every command prints one JSON
object, its refusals and usage errors too.

Each command group has its parser function (`_company_commands`, ...) and its commands' handlers in
HANDLERS, keyed by (command, action): a handler returns the JSON payload and the text for a terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import orjson

from app import admin, admin_views, api_tokens, auth, logs, notify_admin, tracing
from app.settings import Settings, SettingsError
from domain.errors import DomainError
from domain.permissions import Grant, PermissionLevel, TokenScope
from domain.status import ExportStatus
from erp.base import ALLOW_PRIVATE_NETWORK
from erp.registry import CONNECTORS, UnknownConnectorError, check_connector_name, connector_options
from persistence.database import Database, SqlUnitOfWork
from persistence.migrate import migrate
from persistence.reads import ReadStore
from persistence.types import UnstorableValueError
from persistence.unit_of_work import AWAITING_CALLBACK, DONE, FAILED, QUEUED, RUNNING
from resolvers.context import utc_now

LEVELS = [level.name for level in PermissionLevel]
REQUEST_STATUSES = [status.value for status in ExportStatus if status is not ExportStatus.NOT_SENT]
JOB_STATES = [QUEUED, RUNNING, AWAITING_CALLBACK, DONE, FAILED]
JSON_FLAG = "--json"

Result = tuple[dict[str, Any], str]
Handler = Callable[[argparse.Namespace, Settings], Awaitable[Result]]


# --- parsing ---------------------------------------------------------------------------------------------


class UsageError(Exception):
    """A command line argparse refuses; `usage` is the usage of the (sub)command at fault."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises UsageError instead of printing and exiting, so main() can answer in JSON. Subcommands' parsers
    are of the same class (argparse makes them with the parent's)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage().strip())


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host(text: str) -> str:
    """An IP address to bind (0.0.0.0, ::, 127.0.0.1) or a host name (letters, digits, hyphens, dots)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text.strip("[]")))
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or host name")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="budgetbridge", description="BudgetBridge server and administration")
    parser.add_argument(JSON_FLAG, action="store_true", help="print one JSON object (for scripts), given anywhere")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_commands(sub)
    sub.add_parser("migrate", help="bring the database schema up to date (each revision shown on a terminal)")
    _company_commands(sub)
    notify_admin.add_commands(sub)
    _project_commands(sub)
    _erp_commands(sub)
    _report_commands(sub)
    _user_commands(sub)
    _token_commands(sub)
    return parser


def _serve_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the GraphQL server")
    serve.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="1-65535 (default 8000)")
    serve.add_argument("--demo", action="store_true", help="seed demo data and print demo users' tokens")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (needs a redis:// or postgres:// BUDGETBRIDGE_BROADCAST_URL and, sensibly, PostgreSQL)",
    )
    worker = sub.add_parser(
        "worker", help="run the export worker alone (exports, retries, posting detection) and the notifications"
    )
    worker.add_argument("--company", help="only this company's exports (a dedicated worker)")


def _connector_help() -> str:
    return "; ".join(f"{name}: {', '.join(connector_options(name))}" for name in CONNECTORS)


def _company_commands(sub: Any) -> None:
    company = sub.add_parser("company", help="companies").add_subparsers(dest="action", required=True)
    create = company.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--currency", default="USD")
    company.add_parser("list", help="every company with its currency and ERP connector")
    set_erp = company.add_parser(
        "set-erp",
        help="choose the company's ERP connector (or none) and its options",
        description="Options each connector takes (anything else is refused): " + _connector_help(),
    )
    set_erp.add_argument("--company", required=True)
    set_erp.add_argument("--connector", required=True, help="none, " + ", ".join(CONNECTORS))
    set_erp.add_argument("--drop-folder", help="sage300-file, vista-csv: folder the import files are written to")
    set_erp.add_argument("--url", help="webhook: the integrator's endpoint")
    set_erp.add_argument("--secret", help="webhook: shared HMAC secret (at least 16 characters)")
    set_erp.add_argument(
        "--allow-private-network",
        action="store_true",
        help="webhook: accept http:// and a loopback, private or link-local address (an integrator on the "
        "company's own network); stored with the connection",
    )
    set_erp.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="any other connector option (repeatable)"
    )
    set_sso = company.add_parser(
        "set-sso", help="trust the company's OpenID Connect issuer for its people's sign-in (checked now)"
    )
    set_sso.add_argument("--company", required=True)
    set_sso.add_argument("--issuer", required=True, help="the issuer URL, exactly as in its tokens' `iss`")
    set_sso.add_argument("--audience", required=True, help="the `aud` of the access tokens it issues for this API")
    set_sso.add_argument("--claim", default="email", help="the claim holding the person's email (default: email)")
    set_sso.add_argument(
        "--provision", action="store_true", help="create an unknown person's user at first sign-in, with no permissions"
    )
    set_sso.add_argument("--client-id", help="the dashboard's public client (Authorization Code + PKCE)")
    notify_admin.add_company_commands(company)


def _project_commands(sub: Any) -> None:
    project = sub.add_parser("project", help="projects").add_subparsers(dest="action", required=True)
    create = project.add_parser("create", help="a project with its empty budget (as createProject makes one)")
    create.add_argument("--company", required=True)
    create.add_argument("--number", required=True, help="the project number, unique in the company")
    create.add_argument("--name", required=True)
    create.add_argument("--erp-job-id", help="the job that already exists in the ERP for it (else: sync it later)")


def _erp_commands(sub: Any) -> None:
    erp = sub.add_parser("erp", help="ERP requests, the export queue, the embedded ledger").add_subparsers(
        dest="action", required=True
    )
    post = erp.add_parser(
        "post", help="post a request's entries in the embedded Job Cost ledger, as an accountant would"
    )
    post.add_argument("--request", required=True, metavar="ERP_REQUEST_ID")
    requests = erp.add_parser("requests", help="ERP requests, newest sent first")
    requests.add_argument("--status", action="append", choices=REQUEST_STATUSES, help="only these (repeatable)")
    requests.add_argument("--company", help="only this company's")
    requests.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    jobs = erp.add_parser("jobs", help="the export queue: each job's state, attempts, due and lease times, last error")
    jobs.add_argument("--status", action="append", choices=JOB_STATES, help="only jobs in these states (repeatable)")
    jobs.add_argument("--company", help="only this company's")
    jobs.add_argument("--limit", type=_positive, default=50, help="at most this many, newest first (default 50)")
    retry = erp.add_parser(
        "retry", help="retry a failed export as retryExport does, as an approver (who the history names)"
    )
    retry.add_argument("--request", required=True, metavar="ERP_REQUEST_ID")
    retry.add_argument(
        "--user", required=True, help="the approver it is done as (ERP Integrations STANDARD or ADMIN)"
    )


def _report_commands(sub: Any) -> None:
    report = sub.add_parser("report", help="reports").add_subparsers(dest="action", required=True)
    reconciliation = report.add_parser(
        "reconciliation",
        help="per line: revised, exported, posted, pending, unsent and their difference (CSV for a spreadsheet)",
    )
    scope = reconciliation.add_mutually_exclusive_group(required=True)
    scope.add_argument("--budget", metavar="BUDGET_ID", help="one budget, a row per line")
    scope.add_argument("--company", metavar="COMPANY_ID", help="every project's totals")
    reconciliation.add_argument(
        "--format", choices=["csv", "json"], default="csv", help="csv (default) or json (also with --json)"
    )


def _user_commands(sub: Any) -> None:
    user = sub.add_parser("user", help="users and permissions").add_subparsers(dest="action", required=True)
    ucreate = user.add_parser("create")
    ucreate.add_argument("--company", required=True)
    ucreate.add_argument("--email", required=True)
    ucreate.add_argument("--name", required=True)
    ucreate.add_argument("--company-admin", action="store_true")
    ucreate.add_argument("--approver", action="store_true", help="accounting approver (with --erp-permission STANDARD)")
    ucreate.add_argument("--erp-permission", choices=LEVELS, default="NONE")
    ugrant = user.add_parser("grant")
    ugrant.add_argument("--user", required=True)
    ugrant.add_argument("--project", required=True)
    ugrant.add_argument("--budget-permission", choices=LEVELS, required=True)
    ugrant.add_argument("--grant", action="append", choices=[g.value for g in Grant], default=[])
    ulist = user.add_parser("list", help="users with their company-level rights")
    ulist.add_argument("--company", help="only this company's")
    ushow = user.add_parser("show", help="a user's rights: company admin, approver, ERP Integrations, projects")
    ushow.add_argument("--user", required=True)
    udisable = user.add_parser("disable", help="refuse every token of the user at once and issue no new ones")
    udisable.add_argument("--user", required=True)
    uenable = user.add_parser("enable", help="let a disabled user in again (tokens not revoked work again)")
    uenable.add_argument("--user", required=True)


def _token_commands(sub: Any) -> None:
    token = sub.add_parser(
        "token", help="issue a bearer token for a user; `token revoke` stops every token issued before now"
    )
    token.add_argument("action", nargs="?", choices=["revoke"], help="revoke the user's tokens instead")
    token.add_argument("--user", required=True)
    token.add_argument(
        "--expires-in", type=int, metavar="SECONDS", help="lifetime (default and most: BUDGETBRIDGE_MAX_TOKEN_SECONDS)"
    )
    api_token = sub.add_parser("api-token", help="scoped API tokens for integrators and scripts").add_subparsers(
        dest="action", required=True
    )
    tcreate = api_token.add_parser("create", help="create a token and print it (once: only its hash is kept)")
    tcreate.add_argument("--company", required=True)
    tcreate.add_argument("--name", required=True, help="who uses it, e.g. 'hh2 sync' (named in the audit trail)")
    tcreate.add_argument("--scope", required=True, choices=[s.value for s in TokenScope])
    tcreate.add_argument("--expires-in", type=int, metavar="SECONDS", help="default: until revoked")
    tlist = api_token.add_parser("list", help="a company's tokens with their last use")
    tlist.add_argument("--company", required=True)
    trevoke = api_token.add_parser("revoke", help="revoke a token (it fails at once)")
    trevoke.add_argument("--id", required=True, metavar="TOKEN_ID")


def _json_anywhere(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether --json is on the line (before a `--`), and the line with it moved to the front, where the
    top-level parser reads it."""
    end = argv.index("--") if "--" in argv else len(argv)
    wanted = JSON_FLAG in argv[:end]
    rest = [a for a in argv[:end] if a != JSON_FLAG] + argv[end:]
    return wanted, ([JSON_FLAG] if wanted else []) + rest


# --- running ---------------------------------------------------------------------------------------------


def _connector_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for flag, key in (("drop_folder", "drop_folder"), ("url", "url"), ("secret", "secret")):
        if getattr(args, flag):
            options[key] = getattr(args, flag)
    for pair in args.option:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise admin.AdminError(f"--option takes KEY=VALUE, got {pair!r}")
        options[key.strip()] = value
    if args.allow_private_network:
        options[ALLOW_PRIVATE_NETWORK] = True
    return options


def _worker(settings: Settings, company_id: str | None) -> None:
    from app.export_worker import run_worker

    tracing.setup_from_env()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, company_id))


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        print(orjson.dumps(payload).decode())
    elif text.endswith("\r\n"):  # a CSV document: its own line ends, written as they are
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        print(text)


def _fail(as_json: bool, payload: dict[str, Any], text: str) -> int:
    if as_json:
        print(orjson.dumps(payload).decode())
    else:
        print(text, file=sys.stderr)
    return 2


async def _with_db(settings: Settings, work: Callable[[SqlUnitOfWork], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    db = Database(settings.database_url)
    try:
        if db.is_sqlite:
            await migrate(db)
        async with db.unit_of_work() as uow:
            result = await work(uow)
            await uow.commit()
        return result
    finally:
        await db.dispose()


async def _with_reads(settings: Settings, view: Callable[[ReadStore], Awaitable[Result]]) -> Result:
    async with admin.admin_services(settings) as services:
        return await view(services.reads)


async def _secret(settings: Settings, uow: SqlUnitOfWork) -> str:
    return settings.jwt_secret or await auth.demo_secret(uow.connection)


async def _migrate(args: argparse.Namespace, settings: Settings) -> Result:
    def show(done: int, total: int, revision: str, title: str) -> None:
        print(f"[{done}/{total}] {revision} {title}", flush=True)

    progress = show if sys.stdout.isatty() and not args.json else None
    db = Database(settings.database_url)
    try:
        await migrate(db, progress)
    finally:
        await db.dispose()
    return {"migrated": True}, "database schema is up to date"


async def _company_create(args: argparse.Namespace, settings: Settings) -> Result:
    async def create_company(uow: SqlUnitOfWork) -> dict[str, Any]:
        connector = None if settings.erp_connector == "none" else settings.erp_connector
        return {"id": await admin.create_company(uow, args.name, args.currency, connector)}

    result = await _with_db(settings, create_company)
    return result, f"company {result['id']}"


async def _company_set_erp(args: argparse.Namespace, settings: Settings) -> Result:
    name = check_connector_name(args.connector)
    options = _connector_options(args)

    async def set_erp(uow: SqlUnitOfWork) -> dict[str, Any]:
        await admin.set_company_connector(uow, args.company, None if name == "none" else name, options)
        return {"id": args.company, "connector": name, "options": sorted(options)}

    return await _with_db(settings, set_erp), f"company {args.company} uses {name}"


async def _company_list(args: argparse.Namespace, settings: Settings) -> Result:
    return await _with_reads(settings, admin_views.company_list)


async def _project_create(args: argparse.Namespace, settings: Settings) -> Result:
    async with admin.admin_services(settings) as services:
        project_id = await admin.create_project(services, args.company, args.number, args.name, args.erp_job_id)
    return {"id": project_id, "company": args.company, "number": args.number.strip()}, f"project {project_id}"


async def _erp_post(args: argparse.Namespace, settings: Settings) -> Result:
    async def post(uow: SqlUnitOfWork) -> dict[str, Any]:
        count = await admin.post_embedded_entries(uow, args.request)
        return {"request": args.request, "postedEntries": count}

    result = await _with_db(settings, post)
    return result, f"posted {result['postedEntries']} entries of {args.request} in the embedded Job Cost ledger"


async def _erp_requests(args: argparse.Namespace, settings: Settings) -> Result:
    return await _with_reads(
        settings, lambda reads: admin_views.erp_requests(reads, args.status, args.company, args.limit)
    )


async def _erp_jobs(args: argparse.Namespace, settings: Settings) -> Result:
    return await _with_reads(settings, lambda reads: admin_views.erp_jobs(reads, args.status, args.company, args.limit))


async def _erp_retry(args: argparse.Namespace, settings: Settings) -> Result:
    async with admin.admin_services(settings) as services:
        await admin.retry_export(services, args.request, args.user)
    payload = {"request": args.request, "status": ExportStatus.EXPORTING.value, "queued": True}
    return payload, f"{args.request} is EXPORTING again: its export is queued for the worker"


async def _user_create(args: argparse.Namespace, settings: Settings) -> Result:
    level = PermissionLevel[args.erp_permission]

    async def create_user(uow: SqlUnitOfWork) -> dict[str, Any]:
        user_id = await admin.create_user(
            uow,
            args.company,
            args.email,
            args.name,
            company_admin=args.company_admin,
            approver=args.approver,
            erp_permission=level,
        )
        secret = await _secret(settings, uow)
        ttl = timedelta(seconds=settings.max_token_seconds)
        return {"id": user_id, "token": await admin.issue_user_token(uow.connection, secret, user_id, ttl)}

    result = await _with_db(settings, create_user)
    warning = admin.approver_warning(args.approver, level)
    if warning is not None:
        result["warning"] = warning
        if not args.json:
            print(f"budgetbridge: warning: {warning}", file=sys.stderr)
    return result, f"user {result['id']}\ntoken {result['token']}"


async def _user_grant(args: argparse.Namespace, settings: Settings) -> Result:
    async def grant(uow: SqlUnitOfWork) -> dict[str, Any]:
        await admin.grant(
            uow, args.user, args.project, PermissionLevel[args.budget_permission], [Grant(g) for g in args.grant]
        )
        return {
            "user": args.user,
            "project": args.project,
            "budgetPermission": args.budget_permission,
            "grants": sorted(args.grant),
        }

    return await _with_db(settings, grant), "granted"


async def _user_list(args: argparse.Namespace, settings: Settings) -> Result:
    return await _with_reads(settings, lambda reads: admin_views.user_list(reads, args.company))


async def _user_show(args: argparse.Namespace, settings: Settings) -> Result:
    return await _with_reads(settings, lambda reads: admin_views.user_show(reads, args.user))


async def _user_disable(args: argparse.Namespace, settings: Settings) -> Result:
    async def set_disabled(uow: SqlUnitOfWork) -> dict[str, Any]:
        since = await admin.set_user_disabled(uow.connection, args.user, args.action == "disable", utc_now())
        return {"id": args.user, "disabled": since is not None, "disabledAt": _instant(since)}

    result = await _with_db(settings, set_disabled)
    return result, f"user {args.user} is {args.action}d"


async def _token(args: argparse.Namespace, settings: Settings) -> Result:
    expires_in = settings.max_token_seconds if args.expires_in is None else args.expires_in
    if expires_in <= 0:
        raise admin.AdminError("--expires-in must be a positive number of seconds")
    if expires_in > settings.max_token_seconds:
        raise admin.AdminError(
            f"--expires-in must be at most {settings.max_token_seconds} seconds (BUDGETBRIDGE_MAX_TOKEN_SECONDS)"
        )

    async def token(uow: SqlUnitOfWork) -> dict[str, Any]:
        secret = await _secret(settings, uow)
        ttl = timedelta(seconds=expires_in)
        return {"token": await admin.issue_user_token(uow.connection, secret, args.user, ttl)}

    result = await _with_db(settings, token)
    return result, result["token"]


async def _token_revoke(args: argparse.Namespace, settings: Settings) -> Result:
    if args.expires_in is not None:
        raise admin.AdminError("--expires-in does not go with `token revoke`")

    async def revoke(uow: SqlUnitOfWork) -> dict[str, Any]:
        valid_after = await admin.revoke_tokens(uow.connection, args.user, utc_now())
        return {"user": args.user, "tokensValidAfter": _instant(valid_after)}

    result = await _with_db(settings, revoke)
    return result, f"tokens of {args.user} issued before {result['tokensValidAfter']} no longer work"


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _company_set_sso(args: argparse.Namespace, settings: Settings) -> Result:
    import httpx

    from app import oidc

    refusal = oidc.issuer_refusal(args.issuer.strip())
    if refusal is not None:
        raise admin.AdminError(refusal)
    async with httpx.AsyncClient(timeout=10.0) as http:  # one command: an issuer that does not answer fails here
        try:
            await oidc.discover(http, args.issuer.strip())
        except (httpx.HTTPError, ValueError) as exc:
            raise admin.AdminError(f"the issuer's discovery failed: {exc}") from None

    async def save(uow: SqlUnitOfWork) -> dict[str, Any]:
        config = await oidc.set_sso(uow.connection, args.company, args.issuer, args.audience,
                                    email_claim=args.claim, provision=args.provision, client_id=args.client_id)
        return {"company": config.company_id, "issuer": config.issuer, "audience": config.audience,
                "claim": config.email_claim, "provision": config.provision, "clientId": config.client_id}

    saved = await _with_db(settings, save)
    return saved, f"company {saved['company']} signs its people in with {saved['issuer']}"


async def _api_token_create(args: argparse.Namespace, settings: Settings) -> Result:
    async def create(uow: SqlUnitOfWork) -> dict[str, Any]:
        expires = timedelta(seconds=args.expires_in) if args.expires_in is not None else None
        token, record = await api_tokens.create(uow.connection, args.company, args.name, args.scope, utc_now(), expires)
        return {**api_tokens.as_json(record), "token": token}

    made = await _with_db(settings, create)
    return made, (
        f"API token {made['id']} ({made['scope']}) acting as {made['principalUserId']}\n"
        f"{made['token']}\n(shown only now: store it in your secret manager)"
    )


async def _api_token_list(args: argparse.Namespace, settings: Settings) -> Result:
    async def listing(uow: SqlUnitOfWork) -> dict[str, Any]:
        return {"tokens": [api_tokens.as_json(t) for t in await api_tokens.listing(uow.connection, args.company)]}

    found = await _with_db(settings, listing)
    rows = [
        "\t".join([t["id"], t["name"], t["scope"], f"created {t['createdAt']}",
                   f"last used {t['lastUsedAt'] or 'never'}", f"expires {t['expiresAt'] or 'never'}",
                   f"revoked {t['revokedAt']}" if t["revokedAt"] else "active"])
        for t in found["tokens"]
    ]
    return found, "\n".join(rows) or "no API tokens"


async def _api_token_revoke(args: argparse.Namespace, settings: Settings) -> Result:
    async def revoke(uow: SqlUnitOfWork) -> dict[str, Any]:
        return api_tokens.as_json(await api_tokens.revoke(uow.connection, args.id, utc_now()))

    revoked = await _with_db(settings, revoke)
    return revoked, f"API token {revoked['id']} revoked"


async def _reconciliation_report(args: argparse.Namespace, settings: Settings) -> Result:
    """The report as JSON (payload) and as the text printed without --json: CSV, or JSON with --format json."""
    from app import reports

    db = Database(settings.database_url)
    try:
        if db.is_sqlite:
            await migrate(db)
        reads = ReadStore(db)
        try:
            if args.budget:
                budget = await reports.budget_report(reads, args.budget)
                payload, csv = reports.budget_json(budget), reports.budget_csv(budget)
            else:
                company = await reports.company_report(reads, args.company)
                payload, csv = reports.company_json(company), reports.company_csv(company)
        except reports.ReportError as exc:
            raise admin.AdminError(str(exc)) from None
    finally:
        await db.dispose()
    return payload, (orjson.dumps(payload).decode() if args.format == "json" else csv)


HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("migrate", None): _migrate,
    ("company", "create"): _company_create,
    ("company", "set-erp"): _company_set_erp,
    ("company", "list"): _company_list,
    ("company", "set-sso"): _company_set_sso,
    ("project", "create"): _project_create,
    ("erp", "post"): _erp_post,
    ("erp", "requests"): _erp_requests,
    ("erp", "jobs"): _erp_jobs,
    ("erp", "retry"): _erp_retry,
    ("report", "reconciliation"): _reconciliation_report,
    ("user", "create"): _user_create,
    ("user", "grant"): _user_grant,
    ("user", "list"): _user_list,
    ("user", "show"): _user_show,
    ("user", "disable"): _user_disable,
    ("user", "enable"): _user_disable,
    ("token", None): _token,
    ("token", "revoke"): _token_revoke,
    ("api-token", "create"): _api_token_create,
    ("api-token", "list"): _api_token_list,
    ("api-token", "revoke"): _api_token_revoke,
}


async def _run(args: argparse.Namespace, settings: Settings) -> Result:
    handled = await notify_admin.run(args, settings)
    if handled is not None:
        return handled
    handler = HANDLERS.get((args.command, getattr(args, "action", None)))
    if handler is None:
        raise SettingsError(f"unknown command {args.command}")
    return await handler(args, settings)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from app import metrics
    from app.main import create_app, print_demo_users, start_runtime

    if args.workers < 1:
        raise SettingsError("--workers must be at least 1")
    if args.workers > 1 and settings.broadcast_is_local:
        raise SettingsError(
            "--workers > 1 needs BUDGETBRIDGE_BROADCAST_URL=redis://... or postgres://...: memory:// only reaches "
            "subscribers in its own process"
        )

    if not os.environ.get("BUDGETBRIDGE_PUBLIC_URL", "").strip():
        # Unset, links (the demo's sign-in links, notifications) name the address this server listens on.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        local = f"http://{'[' + host + ']' if ':' in host else host}:{args.port}"
        os.environ["BUDGETBRIDGE_PUBLIC_URL"] = local  # --workers > 1: the worker processes read it too
        settings = dataclasses.replace(settings, public_url=local)

    async def preflight() -> None:
        """Fail here with one line rather than inside the server's startup with a traceback; seed the
        demo once, before any worker process starts."""
        runtime = await start_runtime(settings, demo=args.demo)
        try:
            if args.demo:
                await print_demo_users(runtime)
        finally:
            await runtime.db.dispose()

    tracing.setup_from_env()
    asyncio.run(preflight())
    # Logging is app.logs's (configured in main): uvicorn installs no config of its own, and its access log
    # is replaced by ours, which has the request id and the GraphQL operation.
    logging_options: dict[str, Any] = {"log_config": None, "access_log": False}
    metrics_dir = metrics.prepare_multiprocess_dir(args.workers)  # before the worker processes start
    try:
        if args.workers == 1:
            uvicorn.run(create_app(settings, demo=args.demo), host=args.host, port=args.port, **logging_options)
            return
        os.environ["BUDGETBRIDGE_DEMO"] = "1" if args.demo else "0"
        uvicorn.run(
            "app.main:create_app_from_env",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            **logging_options,
        )
    finally:
        metrics.remove_own_dir(metrics_dir)


# What a command may be refused with: one line (or one JSON object), exit code 2, nothing changed.
REFUSALS = (
    SettingsError, admin.AdminError, api_tokens.ApiTokenError, UnknownConnectorError, UnstorableValueError, DomainError
)


def _refuse(as_json: bool, exc: Exception) -> int:
    code = getattr(exc, "code", None)
    return _fail(as_json, {"error": str(exc), **({"code": code} if code else {})}, f"budgetbridge: {exc}")


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a parsed command (not serve or worker), print its answer or its refusal; the exit code."""
    try:
        payload, text = await _run(args, settings)
    except REFUSALS as exc:
        return _refuse(args.json, exc)
    _emit(args.json, payload, text)
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line parsed (--json anywhere on it); UsageError when argparse refuses it."""
    return _parser().parse_args(_json_anywhere(argv)[1])


def main(argv: list[str] | None = None) -> int:
    line = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(line)
    except UsageError as exc:
        usage = " ".join(exc.usage.split())  # argparse wraps it for a terminal
        as_json = _json_anywhere(line)[0]
        return _fail(as_json, {"error": str(exc), "usage": usage}, f"{exc.usage}\nbudgetbridge: {exc}")
    try:
        settings = Settings.from_env()
        # Servers log their work; a one-shot command's result is its output, so it logs only what went wrong
        # (unless BUDGETBRIDGE_LOG_LEVEL says otherwise).
        default_level = "INFO" if args.command in ("serve", "worker") else "WARNING"
        logs.configure(settings.log_format, settings.log_level or default_level)
        if args.command == "serve":
            _serve(args, settings)
            return 0
        if args.command == "worker":
            _worker(settings, args.company)
            return 0
    except REFUSALS as exc:
        return _refuse(args.json, exc)
    return asyncio.run(run_command(args, settings))


if __name__ == "__main__":
    sys.exit(main())
