"""The CLI's notification commands: a company's chat channel, today's digest on demand, the outbox.

    budgetbridge company set-chat --company ID --url URL [--allow-private-network]   (or --remove)
    budgetbridge notify digest [--company ID]
    budgetbridge notify outbox --company ID [--limit N]
"""

from __future__ import annotations

import argparse
from typing import Any

from app.admin import AdminError, admin_services
from app.settings import Settings
from domain.errors import NotFoundError
from erp.url_safety import UnsafeUrlError, check_url
from resolvers import notifications


def add_company_commands(company: Any) -> None:
    """`company set-chat` on the CLI's `company` subcommands."""
    chat = company.add_parser(
        "set-chat", help="the company's chat channel: an incoming-webhook URL (Slack, Teams) for notifications"
    )
    chat.add_argument("--company", required=True)
    target = chat.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="https:// incoming-webhook URL")
    target.add_argument("--remove", action="store_true", help="remove the chat channel")
    chat.add_argument(
        "--allow-private-network",
        action="store_true",
        help="accept http:// and loopback, private or link-local addresses (an internal chat server)",
    )


def add_commands(sub: Any) -> None:
    """The `notify` command group."""
    notify = sub.add_parser("notify", help="notifications").add_subparsers(dest="action", required=True)
    digest = notify.add_parser(
        "digest", help="write today's digest for every approver where something waits (once a day) and deliver"
    )
    digest.add_argument("--company", help="only this company")
    outbox = notify.add_parser("outbox", help="list a company's notifications and their delivery state")
    outbox.add_argument("--company", required=True)
    outbox.add_argument("--limit", type=int, default=20)


async def run(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str] | None:
    """The command's JSON payload and text, or None when it is not one of these commands."""
    if args.command == "company" and args.action == "set-chat":
        return await _set_chat(args, settings)
    if args.command == "notify" and args.action == "digest":
        return await _digest(args, settings)
    if args.command == "notify" and args.action == "outbox":
        return await _outbox(args, settings)
    return None


async def _set_chat(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    url = None
    if not args.remove:
        try:
            url = await check_url(args.url, allow_private_network=args.allow_private_network)
        except UnsafeUrlError as exc:
            raise AdminError(f"--url: {exc}") from None
    async with admin_services(settings) as services:
        try:
            await notifications.set_chat_webhook(
                services, args.company, url, allow_private_network=args.allow_private_network, at=services.clock()
            )
        except NotFoundError:
            raise AdminError(f"no company {args.company}") from None
    if url is None:
        return {"id": args.company, "chat": None}, f"company {args.company} has no chat channel"
    payload = {"id": args.company, "chat": url, "allowPrivateNetwork": args.allow_private_network}
    return payload, f"company {args.company} posts notifications to its chat channel"


async def _digest(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from app.notifier import build_notifier

    async with admin_services(settings) as services:
        notifier = build_notifier(settings, services, company_id=args.company)
        written = await notifier.digest_now()
        handled = await notifier.deliver_due()
    text = f"{written} digest(s) written, {handled} notification(s) handled"
    if written == 0:
        text += " (nothing waits, or today's digests were already written)"
    return {"digests": written, "handled": handled}, text


async def _outbox(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    if args.limit < 1:
        raise AdminError("--limit must be at least 1")
    async with admin_services(settings) as services:
        rows = (await notifications.outbox(services, args.company))[-args.limit :]
    items = [
        {
            "id": r.id,
            "kind": r.kind,
            "channel": r.channel,
            "to": r.address,
            "status": r.status,
            "attempts": r.attempts,
            "createdAt": r.created_at.isoformat(),
            "sentAt": r.sent_at.isoformat() if r.sent_at else None,
            "lastError": r.last_error,
        }
        for r in rows
    ]
    lines = [
        f"{r.created_at:%Y-%m-%d %H:%M} {r.kind:<17} {r.channel:<5} {r.status:<17} {r.address or 'chat'}"
        + (f"  ({r.last_error})" if r.last_error else "")
        for r in rows
    ]
    return {"notifications": items}, "\n".join(lines) or "no notifications"
