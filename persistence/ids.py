"""Opaque ids: '<prefix>_<uuid hex>'. The prefix tells the `node` query which table to look in."""

from __future__ import annotations

import uuid

PREFIXES = {
    "Company": "co",
    "User": "usr",
    "Project": "prj",
    "CostCode": "cc",
    "CostType": "ct",
    "Budget": "bgt",
    "BudgetLineItem": "li",
    "BudgetModification": "mod",
    "ErpRequest": "req",
    "ExportEntry": "ent",
    "ErpJob": "job",
    "ExportJob": "xj",
    "ErpJobCostEntry": "jce",
    "Notification": "ntf",
}
TYPE_BY_PREFIX = {prefix: name for name, prefix in PREFIXES.items()}


def new_id(type_name: str) -> str:
    return f"{PREFIXES[type_name]}_{uuid.uuid4().hex}"


def type_of(object_id: str) -> str | None:
    prefix, _, rest = object_id.partition("_")
    if len(rest) != 32:
        return None
    return TYPE_BY_PREFIX.get(prefix)
