"""Re-exports of the GraphQL types, now split by aggregate (schema.common, schema.people, schema.projects,
schema.budgets, schema.requests, schema.events). Import from those; this module only keeps older imports
(schema.inputs, schema.mutation) working until they move, and then goes."""

from __future__ import annotations

from schema.budgets import Budget, BudgetLineItem, BudgetModification, load_line
from schema.common import Blocker, Connection, Ctx, Edge, Node, PageInfo, UserError, blockers, connection, user_errors
from schema.events import BudgetEvent
from schema.people import Company, User, load_user
from schema.projects import CostCode, CostType, Project
from schema.requests import ErpCapabilities, ErpConnection, ErpRequest, ExportLine

__all__ = [
    "Blocker",
    "Budget",
    "BudgetEvent",
    "BudgetLineItem",
    "BudgetModification",
    "Company",
    "Connection",
    "CostCode",
    "CostType",
    "Ctx",
    "Edge",
    "ErpCapabilities",
    "ErpConnection",
    "ErpRequest",
    "ExportLine",
    "Node",
    "PageInfo",
    "Project",
    "User",
    "UserError",
    "blockers",
    "connection",
    "load_line",
    "load_user",
    "user_errors",
]
