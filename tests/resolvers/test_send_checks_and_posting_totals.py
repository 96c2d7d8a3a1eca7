"""On the fake unit of work: sendToERP runs the connector's format check on the batch the send would export
(ERP_FORMAT_INVALID per line and field, nothing changed), confirmJobCostPosting checks the posting journal's
control totals (POSTING_TOTALS_MISMATCH, VALIDATION_FAILED when required and missing, nothing changed and the
ERP not told), and the worker's check before writing fails an export whose connection changed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.errors import ErpFormatInvalidError, ErrorCode
from domain.status import ExportStatus
from erp.base import ExportBatch, FormatInvalidError, FormatViolation, ViolationField
from resolvers import export_pipeline
from resolvers.budget_lines import create_modification, update_line_item
from resolvers.erp_requests import confirm_posting, send_to_erp
from resolvers.locking import unlock_budget
from resolvers.service import Outcome
from tests.erp.fakes import ScriptedConnector
from tests.resolvers.service_support import T0, Shop, accepted, make_shop, refused

E, S, F = ErrorCode, ExportStatus, ViolationField


def long_cost_codes(batch: ExportBatch) -> list[FormatViolation]:
    """A target whose cost codes hold 5 characters, and whose job numbers 2."""
    found = [
        FormatViolation(item.line_item_id, F.COST_CODE, f"Line {item.line_label}: the cost code is too long.")
        for item in batch.items
        if len(item.cost_code) > 5
    ]
    if len(batch.job_number) > 2:
        found.append(FormatViolation(None, F.JOB_NUMBER, f"The job {batch.job_number!r} is too long."))
    return found


async def send(shop: Shop, key: str | None = None) -> Outcome:
    return await send_to_erp(shop.ctx("admin"), shop.budget_id, None, key)


# --- sendToERP: the format check ------------------------------------------------------------------------------


async def test_the_send_checks_the_batch_it_would_export_with_every_line_field() -> None:
    shop = make_shop()
    concrete = await shop.add_line(amount="1500.00", description="Footings", quantity=Decimal("12.5"),
                                   unit_of_measure="CY", unit_cost=Decimal("120.00"), sub_job="BLDG-A")
    steel = await shop.add_line("05-120", "M", amount="2500.00")
    await shop.lock()
    accepted(await create_modification(shop.ctx("admin"), shop.budget_id, steel, concrete, Decimal("300.00"),
                                       "Owner change #4", None))

    accepted(await send(shop))

    (batch,) = shop.connector.validated
    assert (batch.request_sequence, batch.request_kind, batch.erp_job_id, batch.job_number, batch.job_name,
            batch.export_date, batch.company_id) == (1, "CREATE_BUDGET", "JOB-1", "P-1", shop.project.name,
                                                     T0.date(), shop.company.id)
    rows = [(i.line_item_id, i.kind, i.amount, i.cost_code, i.cost_type, i.sub_job, i.description, i.quantity,
             i.unit_of_measure, i.unit_cost, i.modification_number, i.modification_notes, i.is_new_line,
             i.line_original_amount) for i in batch.items]
    assert rows == [
        (concrete, "ORIGINAL_BUDGET", Decimal("1500.00"), "03-300", "L", "BLDG-A", "Footings", Decimal("12.5"),
         "CY", Decimal("120.00"), None, None, True, Decimal("1500.00")),
        (concrete, "BUDGET_MODIFICATION", Decimal("300.00"), "03-300", "L", "BLDG-A", "Footings", Decimal("12.5"),
         "CY", Decimal("120.00"), 1, "Owner change #4", False, None),
        (steel, "ORIGINAL_BUDGET", Decimal("2500.00"), "05-120", "M", None, None, None, None, None, None, None,
         True, Decimal("2500.00")),
        (steel, "BUDGET_MODIFICATION", Decimal("-300.00"), "05-120", "M", None, None, None, None, None, 1,
         "Owner change #4", False, None),
    ]
    assert batch.items[0].cost_code_description == shop.codes["03-300"].description
    assert len({i.entry_id for i in batch.items}) == 4


async def test_every_violation_refuses_the_send_naming_its_line_and_field_and_nothing_changes() -> None:
    shop = make_shop()
    shop.connector.violations = long_cost_codes
    a = await shop.add_line(amount="100.00")
    b = await shop.add_line("05-120", "M", amount="50.00")
    await shop.lock()

    outcome = await refused(shop, lambda: send(shop), E.ERP_FORMAT_INVALID, E.ERP_FORMAT_INVALID,
                            E.ERP_FORMAT_INVALID)

    assert [(e.line_item_id, e.cell, e.field) for e in outcome.errors] == [
        (a, ("costCode",), ("lineItem", a, "costCode")),
        (b, ("costCode",), ("lineItem", b, "costCode")),
        (None, ("project", "number"), ("project", "number")),
    ]
    assert all(isinstance(e, ErpFormatInvalidError) for e in outcome.errors)
    assert outcome.errors[0].message == "Line 03-300/L: the cost code is too long."


async def test_format_violations_come_with_the_other_reasons_at_once() -> None:
    shop = make_shop()
    shop.connector.violations = long_cost_codes
    await shop.add_line(amount="100.00")  # not locked
    outcome = await refused(shop, lambda: send(shop), E.BUDGET_NOT_LOCKED, E.ERP_FORMAT_INVALID, E.ERP_FORMAT_INVALID)
    assert outcome.errors[1].cell == ("costCode",)


async def test_a_re_send_is_checked_as_the_update_it_would_be() -> None:
    shop = make_shop()
    line = await shop.add_line(amount="100.00")
    await shop.request_in(S.SYNCED)
    accepted(await unlock_budget(shop.ctx("admin"), shop.budget_id, None, None))
    accepted(await update_line_item(shop.ctx("admin"), line, {"original_amount": Decimal("75.00")}, None))
    await shop.lock()
    shop.connector.validated.clear()

    accepted(await send(shop))

    (batch,) = shop.connector.validated
    assert (batch.request_sequence, batch.request_kind) == (2, "UPDATE_BUDGET")
    (item,) = batch.items
    assert (item.amount, item.line_original_amount, item.is_new_line) == (Decimal("-25.00"), Decimal("75.00"), False)


async def test_without_a_connection_no_format_is_checked() -> None:
    shop = make_shop(connector=None)
    await shop.add_line()
    await shop.lock()
    await refused(shop, lambda: send(shop), E.ERP_NOT_CONNECTED)
    assert shop.connector.validated == []


# --- confirmJobCostPosting: control totals --------------------------------------------------------------------


async def awaiting_posting(shop: Shop) -> str:
    """Two lines (100.00 and 50.00) exported and awaiting posting: 2 entries totalling 150.00."""
    await shop.add_line(amount="100.00")
    await shop.add_line("05-120", "M", amount="50.00")
    return await shop.request_in(S.AWAITING_POSTING)


async def confirm(
    shop: Shop, request_id: str, count: int | None, total: str | None, key: str | None = None
) -> Outcome:
    amount = None if total is None else Decimal(total)
    return await confirm_posting(shop.ctx("integrator"), request_id, None, key, entry_count=count, total_amount=amount)


@pytest.mark.parametrize(
    ("count", "total", "fields"),
    [
        (3, "150.00", [("input", "entryCount")]),  # a doubled line
        (2, "250.00", [("input", "totalAmount")]),
        (4, "300.00", [("input", "entryCount"), ("input", "totalAmount")]),  # the whole import doubled
        (1, "100.00", [("input", "entryCount"), ("input", "totalAmount")]),  # a line skipped
        (2, "-150.00", [("input", "totalAmount")]),
    ],
)
async def test_wrong_totals_are_refused_and_the_erp_is_not_told(count: int, total: str, fields: list[tuple[str, ...]]
                                                                ) -> None:
    shop = make_shop()
    request_id = await awaiting_posting(shop)
    outcome = await refused(shop, lambda: confirm(shop, request_id, count, total),
                            *[E.POSTING_TOTALS_MISMATCH] * len(fields))
    assert [e.field for e in outcome.errors] == fields
    assert shop.connector.marked_posted == []
    assert shop.request(request_id).status == "AWAITING_POSTING"


async def test_right_totals_are_accepted() -> None:
    shop = make_shop()
    request_id = await awaiting_posting(shop)
    accepted(await confirm(shop, request_id, 2, "150.00"))
    assert shop.request(request_id).status == "SYNCED"
    assert shop.connector.marked_posted == [shop.request(request_id).export_id]


async def test_required_totals_that_are_missing_are_refused() -> None:
    shop = make_shop()
    shop.connector.requires_posting_totals = True
    request_id = await awaiting_posting(shop)
    outcome = await refused(shop, lambda: confirm(shop, request_id, None, None), E.VALIDATION_FAILED,
                            E.VALIDATION_FAILED)
    assert [e.field for e in outcome.errors] == [("input", "entryCount"), ("input", "totalAmount")]
    await refused(shop, lambda: confirm(shop, request_id, 2, None), E.VALIDATION_FAILED, field=["input", "totalAmount"])
    assert shop.connector.marked_posted == []
    accepted(await confirm(shop, request_id, 2, "150.00"))


@pytest.mark.parametrize(("count", "total", "field"), [(-1, "150.00", "entryCount"), (2, "150.001", "totalAmount")])
async def test_malformed_totals_are_refused(count: int, total: str, field: str) -> None:
    shop = make_shop()
    request_id = await awaiting_posting(shop)
    await refused(shop, lambda: confirm(shop, request_id, count, total), E.VALIDATION_FAILED, field=["input", field])


async def test_totals_of_a_request_not_awaiting_posting_are_not_looked_at() -> None:
    shop = make_shop()
    await shop.add_line()
    request_id = await shop.request_in(S.EXPORTING)
    await refused(shop, lambda: confirm(shop, request_id, 99, "1.00"), E.NOT_PENDING)


async def test_a_confirmation_with_totals_is_idempotent_and_the_key_binds_the_totals() -> None:
    shop = make_shop()
    request_id = await awaiting_posting(shop)
    first = accepted(await confirm(shop, request_id, 2, "150.00", key="post-1"))
    before = shop.mark()
    assert accepted(await confirm(shop, request_id, 2, "150.00", key="post-1")) == first
    assert shop.mark().state == before.state
    await refused(shop, lambda: confirm(shop, request_id, 3, "150.00", key="post-1"), E.VALIDATION_FAILED,
                  field=["input", "idempotencyKey"])


# --- the worker's check before writing ------------------------------------------------------------------------


def test_the_workers_check_fails_a_batch_the_connection_no_longer_takes() -> None:
    violation = FormatViolation("li_1", F.COST_TYPE, "Line 03-300/L: the cost type 'L' has no Vista cost type number.")
    connector = ScriptedConnector(violations=[violation])
    batch = ExportBatch("bb-1", "co_1", "req_1", 1, "CREATE_BUDGET", "J", "J", "Job", date(2025, 6, 5))
    with pytest.raises(FormatInvalidError) as caught:
        export_pipeline.check_format(connector, batch)
    error = caught.value
    assert error.retryable is False and error.violations == [violation]
    assert str(error).startswith("Scripted test ERP cannot import this export as it is: Line 03-300/L: the cost type")
    assert "connection changed since" in str(error) and "retry the export" in str(error)
    export_pipeline.check_format(ScriptedConnector(), batch)  # a batch that fits passes
