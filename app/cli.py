"""`budgetbridge`: the admin command line. With --json every command prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app import admin, api_tokens, auth, logs, notify_admin, tracing
from app.settings import Settings, SettingsError
from domain.permissions import Grant, PermissionLevel, TokenScope
from erp.base import ALLOW_PRIVATE_NETWORK
from erp.registry import CONNECTORS, UnknownConnectorError, check_connector_name
from persistence.database import Database
from persistence.migrate import migrate
from resolvers.context import utc_now

LEVELS = [level.name for level in PermissionLevel]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="budgetbridge", description="BudgetBridge server and administration")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the GraphQL server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="seed demo data and print demo users' tokens")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (needs a redis:// or postgres:// BUDGETBRIDGE_BROADCAST_URL and, sensibly, PostgreSQL)",
    )

    sub.add_parser("migrate", help="bring the database schema up to date")

    company = sub.add_parser("company", help="companies").add_subparsers(dest="action", required=True)
    create = company.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--currency", default="USD")
    set_erp = company.add_parser("set-erp", help="choose the company's ERP connector (or none) and its options")
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
    set_sso.add_argument("--provision", action="store_true",
                         help="create an unknown person's user on first sign-in (with no permissions)")
    set_sso.add_argument("--client-id", help="the dashboard's public client (Authorization Code + PKCE)")
    notify_admin.add_company_commands(company)
    notify_admin.add_commands(sub)

    worker = sub.add_parser(
        "worker", help="run the export worker alone (exports, retries, posting detection) and the notifications"
    )
    worker.add_argument("--company", help="only this company's exports (a dedicated worker)")

    erp = sub.add_parser("erp", help="the embedded ERP ledger").add_subparsers(dest="action", required=True)
    post = erp.add_parser(
        "post", help="post a request's entries in the embedded Job Cost ledger, as an accountant would"
    )
    post.add_argument("--request", required=True, metavar="ERP_REQUEST_ID")

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

    user = sub.add_parser("user", help="users and permissions").add_subparsers(dest="action", required=True)
    ucreate = user.add_parser("create")
    ucreate.add_argument("--company", required=True)
    ucreate.add_argument("--email", required=True)
    ucreate.add_argument("--name", required=True)
    ucreate.add_argument("--company-admin", action="store_true")
    ucreate.add_argument("--approver", action="store_true", help="accounting approver")
    ucreate.add_argument("--erp-permission", choices=LEVELS, default="NONE")
    ugrant = user.add_parser("grant")
    ugrant.add_argument("--user", required=True)
    ugrant.add_argument("--project", required=True)
    ugrant.add_argument("--budget-permission", choices=LEVELS, required=True)
    ugrant.add_argument("--grant", action="append", choices=[g.value for g in Grant], default=[])
    udisable = user.add_parser("disable", help="refuse every token of the user at once and issue no new ones")
    udisable.add_argument("--user", required=True)
    uenable = user.add_parser("enable", help="let a disabled user in again (tokens not revoked work again)")
    uenable.add_argument("--user", required=True)

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

    token = sub.add_parser(
        "token", help="issue a bearer token for a user; `token revoke` stops every token issued before now"
    )
    token.add_argument("action", nargs="?", choices=["revoke"], help="revoke the user's tokens instead")
    token.add_argument("--user", required=True)
    token.add_argument(
        "--expires-in", type=int, metavar="SECONDS", help="lifetime (default and most: BUDGETBRIDGE_MAX_TOKEN_SECONDS)"
    )
    return parser


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


async def _with_db(settings: Settings, work: Callable[[Any], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    db = Database(settings.database_url)
    try:
        if db.is_sqlite:
            await migrate(db)
        async with db.unit_of_work() as uow:
            result = await work(uow.connection)
            await uow.commit()
        return result
    finally:
        await db.dispose()


def _secret(settings: Settings, conn: Any) -> Awaitable[str]:
    async def get() -> str:
        return settings.jwt_secret or await auth.demo_secret(conn)

    return get()


async def _run(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    handled = await notify_admin.run(args, settings)
    if handled is not None:
        return handled
    if args.command == "migrate":
        db = Database(settings.database_url)
        try:
            await migrate(db)
        finally:
            await db.dispose()
        return {"migrated": True}, "database schema is up to date"
    if args.command == "company" and args.action == "create":

        async def create_company(conn: Any) -> dict[str, Any]:
            connector = None if settings.erp_connector == "none" else settings.erp_connector
            return {"id": await admin.create_company(conn, args.name, args.currency, connector)}

        result = await _with_db(settings, create_company)
        return result, f"company {result['id']}"
    if args.command == "company" and args.action == "set-erp":
        name = check_connector_name(args.connector)
        options = _connector_options(args)

        async def set_erp(conn: Any) -> dict[str, Any]:
            await admin.set_company_connector(conn, args.company, None if name == "none" else name, options)
            return {"id": args.company, "connector": name, "options": sorted(options)}

        return await _with_db(settings, set_erp), f"company {args.company} uses {name}"
    if args.command == "company" and args.action == "set-sso":
        return await _set_sso(args, settings)
    if args.command == "erp" and args.action == "post":

        async def post(conn: Any) -> dict[str, Any]:
            count = await admin.post_embedded_entries(conn, args.request)
            return {"request": args.request, "postedEntries": count}

        result = await _with_db(settings, post)
        return result, f"posted {result['postedEntries']} entries of {args.request} in the embedded Job Cost ledger"
    if args.command == "report" and args.action == "reconciliation":
        return await _reconciliation_report(args, settings)
    if args.command == "user" and args.action == "create":

        async def create_user(conn: Any) -> dict[str, Any]:
            user_id = await admin.create_user(
                conn,
                args.company,
                args.email,
                args.name,
                company_admin=args.company_admin,
                approver=args.approver,
                erp_permission=PermissionLevel[args.erp_permission],
            )
            secret = await _secret(settings, conn)
            ttl = timedelta(seconds=settings.max_token_seconds)
            return {"id": user_id, "token": await admin.issue_user_token(conn, secret, user_id, ttl)}

        result = await _with_db(settings, create_user)
        return result, f"user {result['id']}\ntoken {result['token']}"
    if args.command == "user" and args.action == "grant":

        async def grant(conn: Any) -> dict[str, Any]:
            await admin.grant(
                conn, args.user, args.project, PermissionLevel[args.budget_permission], [Grant(g) for g in args.grant]
            )
            return {
                "user": args.user,
                "project": args.project,
                "budgetPermission": args.budget_permission,
                "grants": sorted(args.grant),
            }

        return await _with_db(settings, grant), "granted"
    if args.command == "user" and args.action in ("disable", "enable"):

        async def set_disabled(conn: Any) -> dict[str, Any]:
            since = await admin.set_user_disabled(conn, args.user, args.action == "disable", utc_now())
            return {"id": args.user, "disabled": since is not None, "disabledAt": _instant(since)}

        result = await _with_db(settings, set_disabled)
        return result, f"user {args.user} is {args.action}d"
    if args.command == "token" and args.action == "revoke":
        if args.expires_in is not None:
            raise admin.AdminError("--expires-in does not go with `token revoke`")

        async def revoke(conn: Any) -> dict[str, Any]:
            valid_after = await admin.revoke_tokens(conn, args.user, utc_now())
            return {"user": args.user, "tokensValidAfter": _instant(valid_after)}

        result = await _with_db(settings, revoke)
        return result, f"tokens of {args.user} issued before {result['tokensValidAfter']} no longer work"
    if args.command == "api-token":
        return await _api_token(args, settings)
    if args.command == "token":
        expires_in = settings.max_token_seconds if args.expires_in is None else args.expires_in
        if expires_in <= 0:
            raise admin.AdminError("--expires-in must be a positive number of seconds")
        if expires_in > settings.max_token_seconds:
            raise admin.AdminError(
                f"--expires-in must be at most {settings.max_token_seconds} seconds (BUDGETBRIDGE_MAX_TOKEN_SECONDS)"
            )

        async def token(conn: Any) -> dict[str, Any]:
            secret = await _secret(settings, conn)
            return {"token": await admin.issue_user_token(conn, secret, args.user, timedelta(seconds=expires_in))}

        result = await _with_db(settings, token)
        return result, result["token"]
    raise SettingsError(f"unknown command {args.command}")


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _set_sso(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
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

    async def save(conn: Any) -> dict[str, Any]:
        config = await oidc.set_sso(conn, args.company, args.issuer, args.audience, email_claim=args.claim,
                                    provision=args.provision, client_id=args.client_id)
        return {"company": config.company_id, "issuer": config.issuer, "audience": config.audience,
                "claim": config.email_claim, "provision": config.provision, "clientId": config.client_id}

    saved = await _with_db(settings, save)
    return saved, f"company {saved['company']} signs its people in with {saved['issuer']}"


async def _api_token(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    now = datetime.now(UTC)
    if args.action == "create":

        async def create(conn: Any) -> dict[str, Any]:
            expires = timedelta(seconds=args.expires_in) if args.expires_in is not None else None
            token, record = await api_tokens.create(conn, args.company, args.name, args.scope, now, expires)
            return {**api_tokens.as_json(record), "token": token}

        made = await _with_db(settings, create)
        return made, (
            f"API token {made['id']} ({made['scope']}) acting as {made['principalUserId']}\n"
            f"{made['token']}\n(shown only now: store it in your secret manager)"
        )
    if args.action == "list":

        async def listing(conn: Any) -> dict[str, Any]:
            return {"tokens": [api_tokens.as_json(t) for t in await api_tokens.listing(conn, args.company)]}

        found = await _with_db(settings, listing)
        rows = [
            "\t".join([t["id"], t["name"], t["scope"], f"created {t['createdAt']}",
                       f"last used {t['lastUsedAt'] or 'never'}", f"expires {t['expiresAt'] or 'never'}",
                       f"revoked {t['revokedAt']}" if t["revokedAt"] else "active"])
            for t in found["tokens"]
        ]
        return found, "\n".join(rows) or "no API tokens"

    async def revoke(conn: Any) -> dict[str, Any]:
        return api_tokens.as_json(await api_tokens.revoke(conn, args.id, now))

    revoked = await _with_db(settings, revoke)
    return revoked, f"API token {revoked['id']} revoked"


async def _reconciliation_report(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    """The report as JSON (payload) and as the text printed without --json: CSV, or JSON with --format json."""
    from app import reports
    from persistence.reads import ReadStore

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        payload, text = asyncio.run(_run(args, settings))
    except (SettingsError, admin.AdminError, api_tokens.ApiTokenError, UnknownConnectorError) as exc:
        if args.json:
            print(orjson.dumps({"error": str(exc)}).decode())
        else:
            print(f"budgetbridge: {exc}", file=sys.stderr)
        return 2
    _emit(args.json, payload, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
