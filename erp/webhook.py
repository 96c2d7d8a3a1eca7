"""The integrator webhook: BudgetBridge POSTs a signed JSON event to an integration platform (hh2, Ryvit,
Agave-style middleware, or a company's own service), which writes it to the ERP.

Events: `create_budget` / `update_budget` for an export, `sync_job` to create or link the job.

`create_budget` is sent only when nothing of the budget has reached the ERP before; every other export is
`update_budget` (see `event_name`). Every request
carries `X-BudgetBridge-Delivery`: for an export it is the export id, identical on every retry, so the
integrator de-duplicates on it. The integrator answers at once with success or failure, or with `accepted`
and reports the outcome later to `POST /erp/callbacks/webhook` (see docs/webhook.md).

The URL is an administrator's, so it is not trusted to stay harmless (erp.url_safety): it must be https and
resolve to public addresses only, checked when the connection is saved (`check_settings`) and again on every
connection (the client connects to the address it checked), unless the connection was saved with
`allow_private_network` (--allow-private-network: an integrator on the company's own network, or the tests'
local one). And what the endpoint answers is not trusted to be meant for people: a text of it reaches users
(failure messages, events, notifications, GraphQL errors) only from a JSON answer the integrator signed with
the shared secret (its `messages`); anything else is told in our own words with the HTTP status, never as
the raw body. Identifiers in an answer (`erpReference`, `erpJobId`) are data the workflow needs, kept only
when they have the shape of an identifier.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson

from domain.export import Capabilities
from domain.money import format_decimal, to_amount
from domain.text import storable
from erp.base import (
    ALLOW_PRIVATE_NETWORK,
    POSTING_TOTALS_HELP,
    REQUIRE_POSTING_TOTALS,
    ConnectorConfigError,
    ConnectorError,
    ExportBatch,
    ExportItem,
    ExportReceipt,
    FormatViolation,
    JobSpec,
    flag_option,
    option,
)
from erp.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from erp.url_safety import Resolver, UnsafeAddressError, UnsafeUrlError, check_url, public_only_transport

log = logging.getLogger("budgetbridge.erp")

MIN_SECRET_LENGTH = 16
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 300.0
MAX_MESSAGE_LENGTH = 1000
USER_AGENT = "BudgetBridge-Webhook/1"
# As the columns hold them (persistence.tables: requests.erp_reference, projects.erp_job_id).
MAX_REFERENCE_LENGTH = 200
MAX_JOB_ID_LENGTH = 100

EVENTS = {"CREATE_BUDGET": "create_budget", "UPDATE_BUDGET": "update_budget"}
# Statuses that mean "try again later" although they are 4xx.
RETRYABLE_CLIENT_STATUSES = {408, 425, 429}


def _timeout(settings: dict[str, Any]) -> float:
    value = settings.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConnectorConfigError("the option 'timeout_seconds' must be a number of seconds") from None
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise ConnectorConfigError(f"the option 'timeout_seconds' must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}")
    return seconds


def _url(settings: dict[str, Any], allow_private_network: bool) -> str:
    """The URL's form (no I/O): https, or http only on a private network the administrator allowed. Where it
    resolves is checked by `check_settings` and on every connection."""
    value = option(settings, "url")
    if not isinstance(value, str):
        raise ConnectorConfigError("the option 'url' must be an https URL")
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ConnectorConfigError(f"the option 'url' is not a valid URL: {value!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConnectorConfigError(f"the option 'url' must be an https:// URL, not {value!r}")
    if url.scheme == "http" and not allow_private_network:
        raise ConnectorConfigError(
            "the option 'url' must use https (plain http is accepted only with --allow-private-network)"
        )
    return str(url)


def _secret(settings: dict[str, Any]) -> str:
    value = option(settings, "secret")
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        raise ConnectorConfigError(f"the option 'secret' must be a string of at least {MIN_SECRET_LENGTH} characters")
    return value


def _decimal(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format_decimal(value.copy_abs() if value.is_zero() else value)  # never "-0.00"


def _amount(value: Decimal) -> str:
    return _decimal(to_amount(value)) or "0.00"


def _transaction(item: ExportItem) -> dict[str, Any]:
    return {
        "entryId": item.entry_id,
        "kind": item.kind,
        "costCode": item.cost_code,
        "costType": item.cost_type,
        "subJob": item.sub_job,
        "amount": _amount(item.amount),
        "quantity": _decimal(item.quantity),
        "unitOfMeasure": item.unit_of_measure,
        "unitCost": _decimal(item.unit_cost),
        "modificationNumber": item.modification_number,
        "notes": item.modification_notes,
    }


def _job_cost_rows(items: tuple[ExportItem, ...]) -> list[dict[str, Any]]:
    """One row per budget line in this request, with the total of its amounts in this request (original
    amount or its change, plus modifications in, minus modifications out), in the batch's order."""
    rows: dict[str, dict[str, Any]] = {}
    totals: dict[str, Decimal] = {}
    for item in items:
        if item.line_item_id not in rows:
            rows[item.line_item_id] = {
                "costCode": item.cost_code,
                "costType": item.cost_type,
                "subJob": item.sub_job,
                "description": item.description or item.cost_code_description or None,
            }
            totals[item.line_item_id] = Decimal(0)
        totals[item.line_item_id] += item.amount
    return [{**row, "amount": _amount(totals[line_id])} for line_id, row in rows.items()]


def event_name(batch: ExportBatch) -> str:
    """`create_budget` when nothing of the budget has reached the ERP before this export, else `update_budget`.

    The batch's request_kind says exactly that. domain.export.request_kind makes a request CREATE_BUDGET when
    no earlier request of the budget is live (every earlier one was retrieved or rejected, so none of its
    entries was ever exported), and the request keeps its kind on every retry. An earlier request that is
    neither withdrawn nor SYNCED cannot exist when a request is sent: sendBlockers refuses a send while the
    latest request is PENDING_ACCEPTANCE, EXPORTING, EXPORT_FAILED or AWAITING_POSTING, and RETRIEVED,
    REJECTED and SYNCED are final. So "live" means SYNCED, i.e. written to the ERP -- in particular a request
    whose export failed and was never retried cannot be followed by a second send (it must be retried, and
    its retry is the same create_budget delivery). tests/erp/test_webhook.py checks this against the state
    machine, so a change to it that breaks the rule fails there.
    """
    try:
        return EVENTS[batch.request_kind]
    except KeyError:
        raise ConnectorError(f"unknown request kind {batch.request_kind!r}") from None


def export_payload(batch: ExportBatch) -> dict[str, Any]:
    """The JSON document of a create_budget / update_budget event (documented in docs/webhook.md)."""
    event = event_name(batch)
    return {
        "event": event,
        "deliveryId": batch.export_id,
        "exportId": batch.export_id,
        "requestId": batch.request_id,
        "requestSequence": batch.request_sequence,
        "exportDate": batch.export_date.isoformat(),
        "job": {"erpJobId": batch.erp_job_id or None, "number": batch.job_number, "name": batch.job_name},
        "jobCostRows": _job_cost_rows(batch.items),
        "transactions": [_transaction(item) for item in batch.items],
    }


def sync_job_payload(job: JobSpec, delivery_id: str) -> dict[str, Any]:
    return {
        "event": "sync_job",
        "deliveryId": delivery_id,
        "job": {"projectId": job.project_id, "number": job.number, "name": job.name},
        "costCodes": [{"code": code, "description": description} for code, description in job.cost_codes],
        "costTypes": [{"code": code, "name": name} for code, name in job.cost_types],
        "pairs": [{"costCode": code, "costType": ctype} for code, ctype in job.pairs],
    }


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 3] + "..."


def _messages(body: Any) -> str | None:
    """The integrator's explanation in a signed answer's body: `messages` (list), `message` or `error`."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        texts = [str(m).strip() for m in messages if isinstance(m, str | int | float) and str(m).strip()]
        if texts:
            return _clip("; ".join(texts))
    for key in ("message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return _clip(value)
    return None


def _identifier(value: Any, max_length: int) -> str | None:
    """An id the integrator gave (a reference, a job id): one line of printable text that fits its column, or
    None (absent, blank, or not shaped like an id)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > max_length or not storable(text) or not text.isprintable():
        return None
    return text


UNSIGNED_NOTE = "its answer was not signed, so its text is not shown"


class _Answer:
    def __init__(self, status_code: int, body: Any, has_body: bool, signed: bool) -> None:
        self.status_code = status_code
        self.body = body  # the decoded JSON, or None when empty / not JSON
        self.has_body = has_body  # something was answered (JSON or not)
        self.signed = signed  # signed with the shared secret: its messages may be shown

    def explanation(self) -> str | None:
        """The integrator's own words, only from a signed JSON answer."""
        return _messages(self.body) if self.signed else None


class WebhookConnector:
    name = "webhook"
    display_name = "Integrator webhook"
    detects_posting = False  # the integrator calls back with "posted" instead
    options = {
        "url": "the integrator's endpoint, https:// on a public address (required)",
        "secret": f"the shared HMAC secret, at least {MIN_SECRET_LENGTH} characters (required)",
        "timeout_seconds": f"how long one delivery may take (default {DEFAULT_TIMEOUT_SECONDS:g})",
        "supports_sub_jobs": "true/false: the integrator's ERP takes sub jobs (default true)",
        "requires_posting": "true/false: the integrator's ERP posts exported entries later (default true)",
        REQUIRE_POSTING_TOTALS: POSTING_TOTALS_HELP + " (default false)",
        ALLOW_PRIVATE_NETWORK: "true/false: accept http:// and non-public addresses (set by --allow-private-network)",
    }

    def __init__(
        self,
        options: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        resolve: Resolver | None = None,
    ) -> None:
        settings = dict(options or {})
        self.allow_private_network = flag_option(settings, ALLOW_PRIVATE_NETWORK, False)
        self.url = _url(settings, self.allow_private_network)
        self._secret = _secret(settings)
        self.timeout_seconds = _timeout(settings)
        self.capabilities = Capabilities(
            exports_budget=True,
            exports_modifications=True,
            supports_sub_jobs=flag_option(settings, "supports_sub_jobs", True),
            requires_posting=flag_option(settings, "requires_posting", True),
            exports_quantities=True,
        )
        # The integrator's `posted` callback (or an ERP admin's confirmation) must carry the posting totals.
        self.requires_posting_totals = flag_option(settings, REQUIRE_POSTING_TOTALS, False)
        self._clock = clock
        self._resolve = resolve  # None: the system resolver (tests give their own names)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_seconds), follow_redirects=False,
            headers={"User-Agent": USER_AGENT}, trust_env=False,
            transport=None if self.allow_private_network else public_only_transport(resolve),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check_settings(self) -> None:
        """When the connection is saved: the URL's host resolves to public addresses only (unless the private
        network is allowed). Each connection checks again, so a name re-pointed later is refused then."""
        try:
            await check_url(self.url, allow_private_network=self.allow_private_network, resolve=self._resolve)
        except UnsafeUrlError as exc:
            raise ConnectorConfigError(f"the option 'url' is refused: {exc}") from None

    # --- the Connector protocol ----------------------------------------------------------------------

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        """JSON carries every value the API accepts; the integrator reports what its ERP refuses. Sub jobs,
        when the option forbids them, are a capability (SUB_JOB_NOT_SUPPORTED), not a format violation."""
        return []

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        payload = export_payload(batch)
        answer = await self._post(payload["event"], batch.export_id, payload)
        body = answer.body
        if body is None:
            if answer.has_body:
                raise ConnectorError(f"the integrator answered HTTP {answer.status_code} with a body that is not JSON")
            return ExportReceipt(erp_reference=None, deferred=True)  # accepted; the callback tells the outcome
        if not isinstance(body, dict):
            raise ConnectorError(f"the integrator answered HTTP {answer.status_code} with JSON that is not an object")
        status = body.get("status")
        reference = self._reference(body, batch.export_id)
        if status == "success":
            return ExportReceipt(erp_reference=reference)
        if status == "accepted" or (status is None and answer.status_code == 202):
            return ExportReceipt(erp_reference=reference, deferred=True)
        if status == "failure":
            if not answer.signed:
                raise ConnectorError(f"the integrator reported a failure (HTTP {answer.status_code}); {UNSIGNED_NOTE}")
            raise ConnectorError(answer.explanation() or "the integrator reported a failure without a message")
        raise ConnectorError(
            f"the integrator answered HTTP {answer.status_code} with a status that is not success, accepted or failure"
        )

    @staticmethod
    def _reference(body: dict[str, Any], export_id: str) -> str | None:
        """The answer's erpReference, if it is shaped like one. The export stands either way: a reference that
        is not (too long, control characters) is dropped, not a reason to write the entries again."""
        given = body.get("erpReference")
        reference = _identifier(given, MAX_REFERENCE_LENGTH)
        if reference is None and given not in (None, ""):
            log.warning("export %s: the integrator's erpReference is not a reference; it is not kept", export_id)
        return reference

    async def sync_job(self, job: JobSpec) -> str:
        delivery_id = f"sync-{uuid.uuid4().hex}"
        answer = await self._post("sync_job", delivery_id, sync_job_payload(job, delivery_id))
        body = answer.body
        if isinstance(body, dict):
            if body.get("status") == "failure":
                if not answer.signed:
                    raise ConnectorError(
                        f"the integrator could not sync the job (HTTP {answer.status_code}); {UNSIGNED_NOTE}"
                    )
                raise ConnectorError(answer.explanation() or "the integrator could not sync the job")
            given = body.get("erpJobId")
            if given not in (None, ""):
                erp_job_id = _identifier(given, MAX_JOB_ID_LENGTH)
                if erp_job_id is None:
                    raise ConnectorError(
                        f"the integrator answered an erpJobId that is not a job id of at most {MAX_JOB_ID_LENGTH} "
                        "printable characters"
                    )
                return erp_job_id
        return job.number

    async def posted(self, export_id: str) -> bool | None:
        return None  # the integrator reports posting by callback ("posted") or an admin confirms it

    async def mark_posted(self, export_id: str) -> None:
        return None

    # --- HTTP ------------------------------------------------------------------------------------------

    async def _post(self, event: str, delivery_id: str, payload: dict[str, Any]) -> _Answer:
        """Sign and send one event; 2xx comes back as an _Answer, everything else as ConnectorError."""
        body = orjson.dumps(payload)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            DELIVERY_HEADER: delivery_id,
            EVENT_HEADER: event,
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except UnsafeAddressError as exc:  # the name now resolves into our own network: nothing was sent
            raise ConnectorError(f"the integrator's URL is refused: {exc}") from None
        except httpx.TimeoutException:
            raise ConnectorError(
                f"the integrator did not answer within {self.timeout_seconds:g} s", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ConnectorError(f"could not reach the integrator ({type(exc).__name__})", retryable=True) from None
        content = response.content
        decoded: Any = None
        if content.strip():
            try:
                decoded = orjson.loads(content)
            except orjson.JSONDecodeError:
                decoded = None
        signed = verify(self._secret, response.headers.get(TIMESTAMP_HEADER), response.headers.get(SIGNATURE_HEADER),
                        content, now=timestamp)  # the answer comes within the timeout (at most 300 s)
        answer = _Answer(response.status_code, decoded, bool(content.strip()), signed)
        status_code = response.status_code
        if 200 <= status_code < 300:
            return answer
        explanation = answer.explanation()
        detail = f": {explanation}" if explanation else ""
        if status_code >= 500:
            raise ConnectorError(f"the integrator failed (HTTP {status_code}){detail}", retryable=True)
        if status_code in RETRYABLE_CLIENT_STATUSES:
            raise ConnectorError(f"the integrator asked to try again later (HTTP {status_code}){detail}",
                                 retryable=True)
        if 300 <= status_code < 400:
            raise ConnectorError(f"the integrator answered with a redirect (HTTP {status_code}); "
                                 "configure its final URL")
        raise ConnectorError(f"the integrator refused the {event.replace('_', ' ')} (HTTP {status_code}){detail}")


__all__ = ["WebhookConnector", "event_name", "export_payload", "sync_job_payload"]
