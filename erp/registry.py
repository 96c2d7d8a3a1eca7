"""Connector names -> connector instances. A company's `erp_connector` column holds the name."""

from __future__ import annotations

from erp.base import Connector
from erp.embedded import EmbeddedConnector
from persistence.database import Database

CONNECTORS = ("embedded",)


class UnknownConnectorError(ValueError):
    pass


class ConnectorRegistry:
    def __init__(self, db: Database) -> None:
        self._instances: dict[str, Connector] = {"embedded": EmbeddedConnector(db)}

    def get(self, name: str | None) -> Connector | None:
        if name is None:
            return None
        try:
            return self._instances[name]
        except KeyError:
            raise UnknownConnectorError(f"unknown ERP connector {name!r}; known: {', '.join(CONNECTORS)}") from None


def check_connector_name(name: str) -> str:
    if name != "none" and name not in CONNECTORS:
        raise UnknownConnectorError(f"unknown ERP connector {name!r}; known: none, {', '.join(CONNECTORS)}")
    return name
