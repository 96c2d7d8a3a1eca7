"""Connector names -> connector instances, configured per company (`companies.erp_connector` holds the
name, `companies.erp_settings` its options; `budgetbridge company set-erp` writes both)."""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from erp.base import REQUIRE_POSTING_TOTALS, Connector, ConnectorConfigError, ConnectorOptions, flag_option
from persistence.database import Database

log = logging.getLogger("budgetbridge.erp")

# name -> "module:Class". Imported on first use, so a deployment only loads the connectors it uses.
CONNECTORS: dict[str, str] = {
    "embedded": "erp.embedded:EmbeddedConnector",
    "sage300-file": "erp.sage300:Sage300FileConnector",
    "vista-csv": "erp.vista:VistaCsvConnector",
    "webhook": "erp.webhook:WebhookConnector",
}


class UnknownConnectorError(ValueError):
    pass


def connector_class(name: str) -> Callable[..., Connector]:
    try:
        module_name, _, class_name = CONNECTORS[name].partition(":")
    except KeyError:
        raise UnknownConnectorError(f"unknown ERP connector {name!r}; known: {', '.join(CONNECTORS)}") from None
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


def posting_detectors() -> list[str]:
    """Names of the connectors whose posted() can see Job Cost posting (the worker polls only those)."""
    return [name for name in CONNECTORS if getattr(connector_class(name), "detects_posting", False)]


def connector_options(name: str) -> ConnectorOptions:
    """The options the connector declares: name -> what it sets."""
    options: ConnectorOptions = getattr(connector_class(name), "options")  # noqa: B009  # a class attribute
    return options


def check_option_names(name: str, options: Mapping[str, Any]) -> None:
    """Refuse (ConnectorConfigError) an option the connector does not read: a mistyped name would otherwise be
    saved and silently ignored, leaving the default the admin meant to change."""
    known = connector_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConnectorConfigError(
            f"the {name} connector has no option {unknown[0]!r}{hint} (its options: {', '.join(known)})"
        )


async def validate_options(name: str, options: dict[str, Any]) -> None:
    """Raise ConnectorConfigError (or UnknownConnectorError) if a connector cannot be built from these options:
    an option it does not declare, or one its constructor refuses. The embedded ledger takes only
    `require_posting_totals`; the others check their options' form in their constructors and, with I/O, in
    `check_settings` (the URL's addresses, the drop folder's probe)."""
    cls = connector_class(name)
    check_option_names(name, options)
    if name == "embedded":  # its constructor needs the database; its one option is a flag
        flag_option(options, REQUIRE_POSTING_TOTALS, False)
        return
    connector = cls(options)
    try:
        await connector.check_settings()
    finally:
        close = getattr(connector, "aclose", None)
        if close is not None:
            await close()


def build_connector(name: str, options: dict[str, Any], db: Database) -> Connector:
    """A configured connector; ConnectorConfigError names a missing or bad option."""
    cls = connector_class(name)
    if name == "embedded":
        return cls(options, db=db)
    return cls(options)


class ConnectorRegistry:
    """Connectors are cached per (name, options): options change rarely and some connectors hold
    resources (HTTP clients)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._instances: dict[tuple[str, bytes], Connector] = {}
        self._broken: set[tuple[str, bytes]] = set()  # options that cannot build a connector (warned once)

    def get(self, name: str | None, options: dict[str, Any] | None = None) -> Connector | None:
        if name is None:
            return None
        key = (name, orjson.dumps(options or {}, option=orjson.OPT_SORT_KEYS))
        connector = self._instances.get(key)
        if connector is None:
            if key in self._broken:
                return None
            try:
                connector = build_connector(name, dict(options or {}), self._db)
            except (ConnectorConfigError, UnknownConnectorError) as exc:
                # `company set-erp` validates options when they are saved; if they went bad since (or were
                # saved before a rule existed: an http webhook URL, a relative drop folder), the company is
                # treated as not connected (sendBlockers says ERP_NOT_CONNECTED), not as a crash. Said once
                # per options, without a traceback: it is a setting to fix, read on every request.
                log.warning("ERP connector %s is misconfigured (save it again with company set-erp): %s", name, exc)
                self._broken.add(key)
                return None
            self._instances[key] = connector
        return connector

    async def aclose(self) -> None:
        for connector in self._instances.values():
            close = getattr(connector, "aclose", None)
            if close is not None:
                await close()


def check_connector_name(name: str) -> str:
    if name != "none" and name not in CONNECTORS:
        raise UnknownConnectorError(f"unknown ERP connector {name!r}; known: none, {', '.join(CONNECTORS)}")
    return name


__all__ = ["ConnectorConfigError", "ConnectorRegistry", "UnknownConnectorError", "build_connector", "validate_options"]
