"""`POST /erp/callbacks/webhook`: an integrator reports the outcome of an export it accepted earlier
(`success` with the ERP's reference, `failure` with its messages) and, later, that the entries were posted
in Job Cost (`posted`, with the posting journal's `entryCount` and `totalAmount`, checked like
confirmJobCostPosting's control totals).

The request is signed like the webhook events we send (erp/signing.py) with the company's webhook secret,
or carries `Authorization: Bearer <API token>` of the export's company with the `erp-callback` scope.
The secret is found through the export id in the body, so the body is parsed before the signature is
checked, but nothing is changed, and nothing about the export is revealed, until the signature holds:
an unknown export and a bad signature get the same 401.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from app import auth
from domain.money import DecimalFormatError, parse_amount
from domain.permissions import TokenScope
from domain.text import unstorable
from erp.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from resolvers import export_callbacks
from resolvers.export_callbacks import NO_TOTALS, PostingTotals

log = logging.getLogger("budgetbridge.webhook")

MAX_BODY_BYTES = 64 * 1024
MAX_ID_LENGTH = 200
MAX_MESSAGES = 50
MAX_MESSAGE_LENGTH = 2000
STATUSES = ("success", "failure", "posted")
UNAUTHORIZED = "the signature is missing, invalid or stale"


class BadCallbackError(ValueError):
    pass


@dataclass(frozen=True)
class Callback:
    export_id: str
    status: str
    erp_reference: str | None
    message: str | None
    totals: PostingTotals = NO_TOTALS


MAX_ENTRY_COUNT = 10_000_000


def _error(message: str, status_code: int, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, **({"code": code} if code else {})}, status_code=status_code)


def _totals(data: dict[str, Any]) -> PostingTotals:
    """`entryCount` (an integer >= 0) and `totalAmount` (a decimal string, at most 2 decimals), each optional."""
    count = data.get("entryCount")
    whole = isinstance(count, int) and not isinstance(count, bool)
    if count is not None and not (whole and 0 <= count <= MAX_ENTRY_COUNT):
        raise BadCallbackError("entryCount must be a whole number of entries (0 or more)")
    total = data.get("totalAmount")
    amount = None
    if total is not None:
        if not isinstance(total, str):
            raise BadCallbackError('totalAmount must be a decimal string such as "-1250.00", not a JSON number')
        try:
            amount = parse_amount(total)
        except DecimalFormatError as exc:
            raise BadCallbackError(f"totalAmount {exc}") from None
    return PostingTotals(entry_count=count, total_amount=amount)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadCallbackError("too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadCallbackError("too large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_callback(body: bytes) -> Callback:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadCallbackError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadCallbackError("the body must be a JSON object")
    export_id = data.get("exportId")
    if not isinstance(export_id, str) or not export_id.strip() or len(export_id) > MAX_ID_LENGTH:
        raise BadCallbackError("exportId is required (the exportId of the webhook event)")
    status = data.get("status")
    if status not in STATUSES:
        raise BadCallbackError(f"status must be one of {', '.join(STATUSES)}")
    reference = data.get("erpReference")
    if reference is not None and (not isinstance(reference, str) or len(reference) > MAX_ID_LENGTH):
        raise BadCallbackError(f"erpReference must be a string of at most {MAX_ID_LENGTH} characters")
    messages = data.get("messages")
    if messages is None:
        messages = []
    if (not isinstance(messages, list) or len(messages) > MAX_MESSAGES
            or not all(isinstance(m, str) and len(m) <= MAX_MESSAGE_LENGTH for m in messages)):
        raise BadCallbackError(f"messages must be a list of at most {MAX_MESSAGES} strings")
    if any(unstorable(text) for text in (export_id, reference or "", *messages)):
        raise BadCallbackError("exportId, erpReference and messages must not contain NUL or unpaired surrogates")
    texts = [" ".join(m.split()) for m in messages]
    message = "; ".join(t for t in texts if t) or None
    totals = _totals(data) if status == "posted" else NO_TOTALS  # the other statuses carry none
    return Callback(export_id=export_id.strip(), status=status, erp_reference=(reference or "").strip() or None,
                    message=message, totals=totals)


async def webhook_callback(request: Request) -> JSONResponse:
    try:
        body = await _read_body(request)
    except BadCallbackError:
        return _error(f"the body must be at most {MAX_BODY_BYTES} bytes", 413)
    except ClientDisconnect:
        return _error("the request body was not received", 400)
    try:
        callback = parse_callback(body)
    except BadCallbackError as exc:
        return _error(str(exc), 400)

    runtime = request.app.state.runtime
    services = runtime.services
    company_id = None
    token = auth.bearer(request.headers.get("authorization"))
    if token is not None:
        # An `erp-callback` API token instead of the signature: it answers for its own company's exports only.
        try:
            viewer = await runtime.auth.authenticate(token)
        except auth.AuthenticationError as refused:
            return _error(refused.message, 401)
        if viewer.actor.scope is not TokenScope.ERP_CALLBACK:
            return _error("integrator callbacks need an API token with the 'erp-callback' scope", 403, "FORBIDDEN")
        company_id = viewer.actor.company_id
    else:
        secret = await export_callbacks.webhook_secret_for_export(services, callback.export_id)
        if secret is None or not verify(secret, request.headers.get(TIMESTAMP_HEADER),
                                        request.headers.get(SIGNATURE_HEADER), body, now=int(time.time())):
            return _error(UNAUTHORIZED, 401)

    try:
        status = await export_callbacks.apply_callback(
            services, callback.export_id, callback.status, erp_reference=callback.erp_reference,
            message=callback.message, totals=callback.totals, company_id=company_id,
        )
    except export_callbacks.CallbackRejectedError as exc:
        return _error(str(exc) or "the callback does not fit the export's current status", 409, exc.code)
    except Exception:
        log.exception("webhook callback for %s failed", callback.export_id)
        return _error("the callback could not be applied; try again later", 500)
    log.info("webhook callback %s for %s -> %s", callback.status, callback.export_id, status)
    return JSONResponse({"status": status})
