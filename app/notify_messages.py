"""What each notification says: the email (subject, plain text and HTML) and the chat line.

Everything a user typed (project names, people's names, rejection reasons, connector messages, the company's
name) is escaped in the HTML part; header values lose line breaks. Amounts are exact decimals formatted in
the company's currency (domain.money.format_money); links go to the dashboard the server serves at
BUDGETBRIDGE_PUBLIC_URL (`/requests/<id>`, `/budgets/<id>`, `/`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from domain.money import format_money
from domain.notifications import Content, NotificationKind, RequestFacts
from domain.status import ExportStatus

K = NotificationKind

KIND_LABELS = {"CREATE_BUDGET": "Original budget", "UPDATE_BUDGET": "Budget update"}
SETTING_NAMES = {
    K.REQUEST_ARRIVED: "Request arrived",
    K.REQUEST_REJECTED: "Request rejected",
    K.EXPORT_FAILED: "Export failed",
    K.POSTING_REMINDER: "Posting reminder",
    K.REQUEST_SYNCED: "Request synced",
    K.DAILY_DIGEST: "Daily digest",
}
DIGEST_SECTIONS = {
    ExportStatus.PENDING_ACCEPTANCE: "Waiting for a decision",
    ExportStatus.EXPORT_FAILED: "Export failed: retry or fix",
    ExportStatus.AWAITING_POSTING: "Awaiting posting in Job Cost",
}


@dataclass(frozen=True)
class Links:
    public_url: str

    def request(self, request_id: str) -> str:
        return f"{self.public_url}/requests/{request_id}"

    def budget(self, budget_id: str) -> str:
        return f"{self.public_url}/budgets/{budget_id}"

    @property
    def queue(self) -> str:
        return f"{self.public_url}/"


# --- small formatting helpers -----------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _project(r: RequestFacts) -> str:
    return f"{r.project_name} ({r.project_number})" if r.project_number else r.project_name


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    days, hours = divmod(hours, 24)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours or not days:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    return " ".join(parts)


def _kind(r: RequestFacts) -> str:
    return f"{KIND_LABELS.get(r.kind, r.kind)} (request #{r.sequence})"


def _facts(r: RequestFacts) -> list[tuple[str, str]]:
    rows = [
        ("Project", _project(r)),
        ("Sent by", f"{r.sender_name}, {_when(r.sent_at)}"),
        ("Kind", _kind(r)),
        ("Lines", str(r.line_count)),
        ("Original budget", format_money(r.total_original, r.currency)),
        ("Budget changes", format_money(r.total_changes, r.currency)),
        ("Revised estimate", format_money(r.total_revised, r.currency)),
    ]
    if r.erp_reference:
        rows.append(("ERP reference", r.erp_reference))
    return rows


@dataclass(frozen=True)
class _Body:
    """A message as parts both renderings share: paragraphs, an optional quote, the facts, calls to action."""

    subject: str
    greeting: str
    intro: list[str]
    quote_label: str | None = None
    quote: str | None = None
    facts: list[tuple[str, str]] | None = None
    actions: list[tuple[str, str]] | None = None  # (text, url)
    digest: list[tuple[str, list[RequestFacts]]] | None = None
    footer: str = ""


def _compose(content: Content, links: Links) -> _Body:
    greeting = f"Hello {content.recipient_name}," if content.recipient_name else "Hello,"
    kind = content.kind
    footer = _footer(content)
    if kind is K.DAILY_DIGEST:
        return _digest(content, links, greeting, footer)
    r = content.request
    assert r is not None, f"a {kind.value} notification is about a request"
    project = _project(r)
    request_link = ("Open the request", links.request(r.request_id))
    if kind is K.REQUEST_ARRIVED:
        return _Body(
            subject=f"Budget waiting for your approval: {project}",
            greeting=greeting,
            intro=[
                f"{r.sender_name} sent a budget to the ERP Integrations queue of {r.company_name}. "
                "It waits for your decision."
            ],
            facts=_facts(r),
            actions=[("Review it, then accept or reject it", links.request(r.request_id))],
            footer=footer,
        )
    if kind is K.REQUEST_REJECTED:
        by = f" by {content.actor_name}" if content.actor_name else ""
        return _Body(
            subject=f"Budget rejected: {project}",
            greeting=greeting,
            intro=[f"Your budget for {project} was rejected{by}."],
            quote_label="Reason",
            quote=content.reason or "(no reason given)",
            facts=_facts(r),
            actions=[("Change the budget and send it again", links.budget(r.budget_id)), request_link],
            footer=footer,
        )
    if kind is K.EXPORT_FAILED:
        return _Body(
            subject=f"Export to the ERP failed: {project}",
            greeting=greeting,
            intro=[f"The export of the budget for {project} to the ERP failed. An approver can retry it."],
            quote_label="The ERP connector said",
            quote=content.reason or "(no message)",
            facts=_facts(r),
            actions=[("Open the request to retry the export", links.request(r.request_id))],
            footer=footer,
        )
    if kind is K.POSTING_REMINDER:
        waited = _duration(content.waiting_since or timedelta(0))
        since = f" (exported {_when(r.exported_at)})" if r.exported_at else ""
        return _Body(
            subject=f"Reminder: awaiting posting for {waited}: {project}",
            greeting=greeting,
            intro=[
                f"The budget export for {project} has been awaiting posting in the ERP's Job Cost for {waited}"
                f"{since}. The budget cannot be unlocked until the entries are posted."
            ],
            facts=_facts(r),
            actions=[("Post the entries in Job Cost, or confirm the posting", links.request(r.request_id))],
            footer=footer,
        )
    if kind is K.REQUEST_SYNCED:
        return _Body(
            subject=f"Budget synced to the ERP: {project}",
            greeting=greeting,
            intro=[
                f"Your budget for {project} is synced: the ERP has posted its entries in Job Cost. "
                "The budget can be unlocked again."
            ],
            facts=_facts(r),
            actions=[("Open the budget", links.budget(r.budget_id)), request_link],
            footer=footer,
        )
    raise ValueError(f"no message for {kind}")


def _digest(content: Content, links: Links, greeting: str, footer: str) -> _Body:
    waiting = list(content.waiting)
    company = waiting[0].company_name if waiting else ""
    day = content.day.isoformat() if content.day else ""
    sections = [
        (title, [r for r in waiting if r.status is status]) for status, title in DIGEST_SECTIONS.items()
    ]
    count = len(waiting)
    return _Body(
        subject=f"BudgetBridge daily digest {day}: {count} request{'s' if count != 1 else ''} waiting",
        greeting=greeting,
        intro=[f"This is what waits in the ERP Integrations queue of {company} on {day}."],
        digest=[(title, rows) for title, rows in sections if rows],
        actions=[("Open the queue", links.queue)],
        footer=footer,
    )


def _footer(content: Content) -> str:
    setting = SETTING_NAMES[content.kind]
    return (
        f'You receive this because of your role in BudgetBridge. Turn "{setting}" off in your notification '
        "settings (updateNotificationSettings)."
    )


def _lines(count: int) -> str:
    return f"{count} line{'s' if count != 1 else ''}"


def _digest_line(r: RequestFacts) -> str:
    return (
        f"{_project(r)}: {_kind(r)}, {_lines(r.line_count)}, original {format_money(r.total_original, r.currency)}, "
        f"changes {format_money(r.total_changes, r.currency)}, sent by {r.sender_name} {_when(r.sent_at)}"
    )


# --- the two renderings ------------------------------------------------------------------------------------


def _text(body: _Body, links: Links) -> str:
    out = [body.greeting, ""]
    for paragraph in body.intro:
        out += [paragraph, ""]
    if body.quote is not None:
        out.append(f"{body.quote_label}:")
        out += ["  " + line for line in body.quote.splitlines() or [""]]
        out.append("")
    if body.facts:
        width = max(len(label) for label, _ in body.facts)
        out += [f"  {label:<{width}}  {value}" for label, value in body.facts]
        out.append("")
    for title, rows in body.digest or []:
        out.append(f"{title} ({len(rows)})")
        for r in rows:
            out += [f"  - {_digest_line(r)}", f"    {links.request(r.request_id)}"]
        out.append("")
    for text, url in body.actions or []:
        out += [f"{text}:", url, ""]
    out += ["-- ", body.footer, ""]
    return "\n".join(out)


def _html(body: _Body, links: Links) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; color: #1f2933;">',
        f"<p>{e(body.greeting)}</p>",
        *(f"<p>{e(paragraph)}</p>" for paragraph in body.intro),
    ]
    if body.quote is not None:
        quote = "<br>".join(e(line) for line in body.quote.splitlines())
        parts += [
            f"<p><strong>{e(body.quote_label or '')}:</strong></p>",
            f'<blockquote style="border-left: 3px solid #c1c7cd; margin: 0 0 1em; padding: 0.2em 1em;">{quote}'
            "</blockquote>",
        ]
    if body.facts:
        rows = "".join(
            f'<tr><th style="text-align: left; padding: 2px 12px 2px 0; font-weight: normal; color: #52606d;">'
            f'{e(label)}</th><td style="padding: 2px 0;">{e(value)}</td></tr>'
            for label, value in body.facts
        )
        parts.append(f'<table style="border-collapse: collapse; margin: 0 0 1em;">{rows}</table>')
    for title, items in body.digest or []:
        entries = "".join(
            f'<li><a href="{e(links.request(r.request_id))}">{e(_project(r))}</a>: {e(_digest_line(r))}</li>'
            for r in items
        )
        parts += [f"<h3>{e(title)} ({len(items)})</h3>", f"<ul>{entries}</ul>"]
    parts += [f'<p><a href="{e(url)}">{e(text)}</a></p>' for text, url in body.actions or []]
    parts += [f'<p style="color: #7b8794; font-size: 12px;">{e(body.footer)}</p>', "</body></html>", ""]
    return "\n".join(parts)


def email_message(
    content: Content,
    *,
    public_url: str,
    mail_from: str,
    to_address: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The email: plain text and HTML alternatives, a stable Message-ID, marked as automatically sent."""
    links = Links(public_url.rstrip("/"))
    body = _compose(content, links)
    message = EmailMessage()
    message["Subject"] = _one_line(body.subject)
    message["From"] = mail_from
    name = _one_line(content.recipient_name or "")
    message["To"] = Address(display_name=name, addr_spec=to_address) if name else to_address
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to us
    message["X-BudgetBridge-Notification"] = content.kind.value
    message.set_content(_text(body, links))
    message.add_alternative(_html(body, links), subtype="html")
    return message


def message_id_for(notification_id: str, mail_from: str) -> str:
    """`<ntf_...@domain-of-the-sender>`: the same for every attempt of one notification."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "budgetbridge.invalid"
    return f"<{notification_id}@{domain}>"


def _chat_escape(text: str) -> str:
    # Slack's three control characters; Teams shows the entities as the characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_text(content: Content, *, public_url: str) -> str:
    """One message for a Slack or Teams channel (`{"text": ...}`): what happened, the key facts, the link."""
    links = Links(public_url.rstrip("/"))
    r = content.request
    assert r is not None, "chat messages are about a request"
    project = _chat_escape(_project(r))
    original = format_money(r.total_original, r.currency)
    changes = format_money(r.total_changes, r.currency)
    sender = _chat_escape(r.sender_name)
    link = links.request(r.request_id)
    kind = content.kind
    if kind is K.REQUEST_ARRIVED:
        line = (
            f"Budget waiting for approval: {project} from {sender} ({_chat_escape(_kind(r))}, {_lines(r.line_count)}, "
            f"original {original}, changes {changes})."
        )
    elif kind is K.REQUEST_REJECTED:
        by = f" by {_chat_escape(content.actor_name)}" if content.actor_name else ""
        line = f"Budget rejected{by}: {project}. Reason: {_chat_escape(_one_line(content.reason or ''))}"
    elif kind is K.EXPORT_FAILED:
        said = _chat_escape(_one_line(content.reason or ""))
        line = f"Export to the ERP failed: {project}. The connector said: {said}"
    elif kind is K.POSTING_REMINDER:
        line = (
            f"Reminder: {project} has been awaiting posting in Job Cost for "
            f"{_duration(content.waiting_since or timedelta(0))}."
        )
    elif kind is K.REQUEST_SYNCED:
        line = f"Budget synced to the ERP: {project} (original {original}, changes {changes})."
    else:
        raise ValueError(f"no chat message for {kind}")
    return f"{line}\n{link}"
