"""Records are frozen values built from rows (or any mapping) by column name."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from persistence.records import ProjectRecord, StoredResultRecord

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_record_takes_the_columns_it_names_and_ignores_the_others() -> None:
    row = {
        "id": "prj_1",
        "company_id": "co_1",
        "name": "MOB",
        "number": "24-017",
        "erp_job_id": None,
        "created_at": NOW,
        "rn": 3,
    }
    assert ProjectRecord.of(row) == ProjectRecord("prj_1", "co_1", "MOB", "24-017", None, NOW)


def test_a_record_missing_a_column_is_an_error_not_a_silent_default() -> None:
    with pytest.raises(KeyError):
        StoredResultRecord.of({"input_hash": "h"})


def test_records_are_immutable() -> None:
    record = StoredResultRecord("h", {"budget": "bgt_1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.input_hash = "other"  # type: ignore[misc]
