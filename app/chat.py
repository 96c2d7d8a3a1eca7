"""Chat messages to a company's incoming webhook: `{"text": ...}`, which Slack and Microsoft Teams incoming
webhooks both accept. Unless the URL was saved with --allow-private-network, it is checked again before each
delivery and the connection itself goes only to the public address that was checked (erp.url_safety), so a
name re-pointed at an internal address after it was saved is refused then. What the webhook answers is not
recorded, only its HTTP status: the body of an answer is not ours to show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from app.mailer import Abandoned, DeliveryError
from erp.url_safety import UnsafeUrlError, check_url, public_only_transport

USER_AGENT = "BudgetBridge-Notifications/1"
RETRYABLE_CLIENT_STATUSES = {408, 425, 429}


class ChatPoster:
    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    async def post(
        self, url: str, text: str, *, allow_private_network: bool, before_send: Callable[[], Awaitable[bool]]
    ) -> None:
        """DeliveryError unless the webhook answered 2xx; Abandoned if `before_send` said to stop."""
        try:
            await check_url(url, allow_private_network=allow_private_network)
        except UnsafeUrlError as exc:
            raise DeliveryError(f"the chat webhook URL is refused: {exc}", retryable=False) from None
        if not await before_send():
            raise Abandoned()
        transport = None if allow_private_network else public_only_transport()
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False, transport=transport
            ) as client:
                response = await client.post(url, json={"text": text}, headers={"User-Agent": USER_AGENT})
        except UnsafeUrlError as exc:  # re-pointed between the check and the connection
            raise DeliveryError(f"the chat webhook URL is refused: {exc}", retryable=False) from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(f"the chat webhook could not be reached: {detail}", retryable=True) from None
        if response.is_success:
            return
        retryable = response.status_code >= 500 or response.status_code in RETRYABLE_CLIENT_STATUSES
        raise DeliveryError(f"the chat webhook answered HTTP {response.status_code}", retryable=retryable)
