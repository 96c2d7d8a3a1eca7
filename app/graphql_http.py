"""POST and GET /graphql per GraphQL-over-HTTP, in the order that keeps a request cheap to refuse:

1. the body is capped while it streams in (app.body_limit, before this runs);
2. a presented token is checked (after the client address's failed-authentication limit) before anything of
   the request is parsed: an anonymous caller gets UNAUTHENTICATED and nothing else — no introspection, no
   field suggestions, no validation detail;
3. the user's operation rate limit;
4. the GraphQL-over-HTTP parameters, then the document: a trusted document by id, or the query text;
5. the query cost analysis (schema/cost.py) before graphql-core's validation, then execution.

Media types: `application/graphql-response+json` (parse, validation and variable errors are HTTP 400 without
`data`; UNAUTHENTICATED is 401) and `application/json` (200 for every well-formed request). Either way:
413 PAYLOAD_TOO_LARGE, 429 RATE_LIMITED and 503 SERVICE_UNAVAILABLE carry `Retry-After` where it applies,
and an unexpected failure is a GraphQL error with `extensions.errorId`, never a plain-text 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from app import auth, metrics, pages, response_cache
from app.body_limit import BodyTooLarge
from app.errors import (
    BAD_REQUEST,
    GRAPHQL_RESPONSE_JSON,
    INTERNAL_SERVER_ERROR,
    JSON,
    PAYLOAD_TOO_LARGE,
    RATE_LIMITED,
    SERVICE_UNAVAILABLE,
    UNAUTHENTICATED,
    error_response,
    is_database_outage,
    json_response,
    new_error_id,
)
from app.logs import LogScope, current, scoped
from app.operations import MAX_NAME, note_viewer, observed
from app.rate_limits import Refusal
from app.request_ids import new_request_id
from app.trusted_documents import DocumentLookupError
from resolvers.context import Context, UnauthenticatedError, Viewer

if TYPE_CHECKING:
    from app.graphql_view import GraphQLView
    from app.main import Runtime

log = logging.getLogger("budgetbridge.http")


class _RequestError(Exception):
    """A malformed GraphQL-over-HTTP request (not a GraphQL error): HTTP 4xx for both media types."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header (None: nothing we can answer in, HTTP 406). No Accept
    header, `*/*` and `application/*` mean application/json; the first of equal preference wins."""
    if accept is None or not accept.strip():
        return JSON
    best: str | None = None
    best_q = 0.0
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        media = media.lower()
        if media == GRAPHQL_RESPONSE_JSON:
            candidate = GRAPHQL_RESPONSE_JSON
        elif media in (JSON, "application/*", "*/*"):
            candidate = JSON
        else:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = candidate, q
    return best


def _wants_graphiql(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET"
        and "text/html" in accept
        and "query" not in request.query_params
        and "documentId" not in request.query_params
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


class GraphQLHTTPEndpoint:
    """The ASGI endpoint of GET/POST /graphql (WebSockets go to the strawberry view)."""

    def __init__(self, view: GraphQLView) -> None:
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if _wants_graphiql(request):
            await pages.graphiql_response(request)(scope, receive, send)
            return
        log_scope = current() or LogScope(request_id=new_request_id())
        with scoped(log_scope), observed(log_scope, "http"):
            try:
                response = await self.handle(request)
            except BodyTooLarge:
                log_scope.note_outcome(PAYLOAD_TOO_LARGE)  # the body limit middleware answers 413
                raise
            await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        media = negotiate(request.headers.get("accept"))
        if media is None:
            return error_response(
                406, f"send Accept: {GRAPHQL_RESPONSE_JSON} or {JSON}", BAD_REQUEST
            )
        runtime: Runtime = request.app.state.runtime
        try:
            # Every read of the request (authentication included) on one connection, returned at its end.
            async with runtime.services.reads.session():
                return await self._handle(request, runtime, media)
        except BodyTooLarge:
            raise  # the body limit middleware answers 413
        except ClientDisconnect:
            log.info("the client left before its request body arrived")  # nobody is there to answer
            return error_response(400, "the request body was not received", BAD_REQUEST, media_type=media)
        except _RequestError as refused:
            log.debug("bad request %s: %s", refused.status, refused.message)
            return error_response(refused.status, refused.message, BAD_REQUEST, media_type=media,
                                  headers=refused.headers)
        except Exception as exc:
            if is_database_outage(exc):
                log.warning("service unavailable: %r", exc)
                return self._unavailable(runtime, media)
            error_id = new_error_id()
            log.exception("unexpected error %s", error_id)
            return error_response(500, "Unexpected error.", INTERNAL_SERVER_ERROR, media_type=media, errorId=error_id)

    @staticmethod
    def _unavailable(runtime: Runtime, media: str) -> Response:
        return error_response(
            503,
            "the service is temporarily unavailable: try again shortly",
            SERVICE_UNAVAILABLE,
            media_type=media,
            headers={"retry-after": str(runtime.settings.retry_after_seconds)},
        )

    @staticmethod
    def _rate_limited(refusal: Refusal, media: str, message: str) -> Response:
        return error_response(
            429, message, RATE_LIMITED, media_type=media,
            headers={"retry-after": str(refusal.retry_after)}, retryAfter=refusal.retry_after,
        )

    async def _handle(self, request: Request, runtime: Runtime, media: str) -> Response:
        limits = runtime.rate_limits
        address = _client_address(request)
        token = self.view.token_of(request)
        viewer: Viewer | None = None
        message, reason = UnauthenticatedError().message, ""
        if token is not None:
            blocked = await limits.auth_blocked(address)
            if blocked is not None:
                log.debug("rate limited: failed authentications from %s", address)
                return self._rate_limited(blocked, media, "too many failed authentications: try again later")
            try:
                viewer = await runtime.auth.authenticate(token)
            except auth.AuthenticationError as refused:
                await limits.auth_failed(address)
                message = refused.message
                reason = f" ({refused.refusal.value})" if refused.refusal is not None else ""
        note_viewer(viewer)
        if viewer is None:
            log.debug("request error UNAUTHENTICATED from %s%s", address, reason)
            error = UnauthenticatedError(message)
            return error_response(
                401 if media == GRAPHQL_RESPONSE_JSON else 200, error.message, UNAUTHENTICATED, media_type=media,
                headers={"www-authenticate": "Bearer"},
            )
        refusal = await limits.operation(viewer.actor.user_id)
        if refusal is not None:
            log.debug("rate limited: operations of user %s", viewer.actor.user_id)
            return self._rate_limited(refusal, media, "too many requests: try again later")

        params = await self._params(request)
        log_scope = current()
        if log_scope is not None and isinstance(params.get("operationName"), str):
            log_scope.operation = params["operationName"][:MAX_NAME]  # until the document says (app.operations)
        try:
            text = runtime.trusted_documents.resolve(
                params.get("query"), params.get("documentId"), params.get("extensions")
            )
        except DocumentLookupError as missing:
            log.debug("request error %s: %s", missing.code, missing.message)
            return error_response(
                400 if media == GRAPHQL_RESPONSE_JSON else 200, missing.message, missing.code, media_type=media
            )
        if text is None:
            raise _RequestError(400, "no GraphQL document: send `query` (or `documentId`)")

        cached = await self._cached(request, runtime, viewer, media, text, params)
        if isinstance(cached, Response):
            return cached
        context = Context(services=runtime.services, viewer_or_none=viewer, request=request)
        allowed = {OperationType.QUERY} if request.method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
        started = time.perf_counter()
        try:
            result = await self.view.schema.execute(
                text,
                variable_values=params.get("variables"),
                context_value=context,
                operation_name=params.get("operationName"),
                allowed_operation_types=allowed,
                operation_extensions=params.get("extensions"),
            )
        except InvalidOperationTypeError as exc:
            if request.method == "GET":
                raise _RequestError(405, "only queries can be sent with GET: use POST", {"allow": "POST"}) from None
            raise _RequestError(400, exc.as_http_error_reason(request.method)) from None
        except CannotGetOperationTypeError as exc:
            return self._graphql_errors([GraphQLError(exc.as_http_error_reason())], media)
        except MissingQueryError:
            raise _RequestError(400, "no GraphQL document: send `query` (or `documentId`)") from None

        errors = list(result.errors or [])
        if any((e.extensions or {}).get("code") == SERVICE_UNAVAILABLE for e in errors):
            response = self._unavailable(runtime, media)
            return response
        metrics.record_operation(params.get("operationName"), text, result, time.perf_counter() - started)
        if result.data is None and errors and all(e.path is None for e in errors):
            # Parse, validation, cost or variable errors: execution never started, so no `data` entry.
            return self._graphql_errors(errors, media)
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = [e.formatted for e in errors]
        if result.extensions:
            body["extensions"] = result.extensions
        if cached is not None and not errors and result.data is not None:
            return self._keep(runtime, cached, body, media, text, params)
        return json_response(body, 200, media)

    # --- the response cache (app.response_cache) ---------------------------------------------------------

    @staticmethod
    async def _cached(
        request: Request, runtime: Runtime, viewer: Viewer, media: str, text: str, params: dict[str, Any]
    ) -> Response | response_cache.Lookup | None:
        """A stored answer (or 304) for a query of an unchanged company; else the lookup to store the answer
        under (None: not cacheable: the cache is off, or the document is known not to run a query)."""
        cache = runtime.response_cache
        assert cache is not None  # Runtime builds it
        trusted = runtime.services.trusted_documents
        operation_name = params.get("operationName")
        if not cache.enabled or cache.known_query(text, operation_name, trusted) is False:
            return None
        started = time.perf_counter()
        version = await runtime.services.reads.company_version(viewer.actor.company_id)
        if version is None:
            return None
        key = response_cache.request_key(
            viewer, media, text, operation_name, params.get("variables"), params.get("extensions"),
            runtime.services.clock().date(),
        )
        lookup = cache.lookup(key, version)
        headers = _validator_headers(lookup.etag)
        if request.method == "GET" and response_cache.matches(request.headers.get("if-none-match"), lookup.etag) and (
            lookup.entry is not None or cache.known_query(text, operation_name, trusted)
        ):
            metrics.record_response_cache("not_modified")
            metrics.record_cached_operation(operation_name, text, time.perf_counter() - started)
            _note_ok()
            return Response(status_code=304, headers=headers)
        if lookup.entry is not None:
            metrics.record_response_cache("hit")
            metrics.record_cached_operation(operation_name, text, time.perf_counter() - started)
            _note_ok()
            return Response(lookup.entry.body, 200, headers=headers, media_type=f"{media}; charset=utf-8")
        metrics.record_response_cache("miss")
        return lookup

    @staticmethod
    def _keep(
        runtime: Runtime, lookup: response_cache.Lookup, body: dict[str, Any], media: str, text: str,
        params: dict[str, Any],
    ) -> Response:
        """A complete answer of a cacheable request: sent with its validator, and kept when it ran a query."""
        cache = runtime.response_cache
        assert cache is not None
        if not cache.learn_query(text, params.get("operationName"), runtime.services.trusted_documents):
            return json_response(body, 200, media)
        response = json_response(body, 200, media, headers=_validator_headers(lookup.etag))
        metrics.record_response_cache("stored" if cache.store(lookup, bytes(response.body)) else "too_large")
        return response

    @staticmethod
    def _graphql_errors(errors: list[GraphQLError], media: str) -> Response:
        status = 400 if media == GRAPHQL_RESPONSE_JSON else 200
        return json_response({"errors": [e.formatted for e in errors]}, status, media)

    async def _params(self, request: Request) -> dict[str, Any]:
        """The GraphQL-over-HTTP parameters of a GET's query string or a POST's JSON body."""
        if request.method == "GET":
            raw: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if name in raw:
                    raw[name] = _json_param(name, raw[name])
        else:
            content_type = request.headers.get("content-type")
            if content_type is None:
                raise _RequestError(415, "send the request body as Content-Type: application/json")
            media, *params = (piece.strip().lower() for piece in content_type.split(";"))
            charset = next((p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")), "utf-8")
            if media != JSON or charset != "utf-8":
                raise _RequestError(415, "send the request body as Content-Type: application/json (utf-8)")
            body = await request.body()
            if not body:
                raise _RequestError(400, "the request body is empty: send a JSON object with `query`")
            try:
                raw = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _RequestError(400, "the request body is not valid JSON") from None
            if not isinstance(raw, dict):
                raise _RequestError(400, "the request body must be a JSON object (batches are not supported)")
        for name, kind in (("query", str), ("operationName", str), ("documentId", str),
                           ("variables", dict), ("extensions", dict)):
            value = raw.get(name)
            if value is not None and not isinstance(value, kind):
                expected = "a string" if kind is str else "an object"
                raise _RequestError(400, f"the `{name}` parameter must be {expected} or null")
        return raw


def _validator_headers(etag: str) -> dict[str, str]:
    # private: a shared proxy must not answer one user with another's; no-cache: revalidate every time.
    return {"etag": etag, "cache-control": "private, no-cache", "vary": "Authorization, Accept"}


def _note_ok() -> None:
    """A stored answer is a complete one: the access line's outcome, as note_body would have noted it."""
    log_scope = current()
    if log_scope is not None:
        log_scope.note_outcome("ok")


def _json_param(name: str, value: str) -> Any:
    if value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _RequestError(400, f"the `{name}` parameter is not valid JSON") from None
