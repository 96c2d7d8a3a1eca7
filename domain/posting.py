"""Posting with control totals: "posted" is tied to what was actually posted.

Whoever confirms that a request's entries are posted in the ERP's Job Cost (an ERP admin's
`confirmJobCostPosting`, an integrator's `posted` callback) may give the posting journal's control totals: how
many entries were posted and their signed sum. They must equal the request's exported entries (every entry of
the request, zero-amount ones included; the sum is signed), or the confirmation is refused with
POSTING_TOTALS_MISMATCH: a doubled or a skipped import then cannot pass as posted, and the budget stays locked.

A company's connection can require the totals (option `require_posting_totals`, the default of the file
connectors, whose posting nothing else can see). A required total that is missing is VALIDATION_FAILED naming
the field: the confirmation is incomplete, which is not the same as a journal that disagrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.errors import DomainError, PostingTotalsMismatchError, ValidationError
from domain.money import ZERO, format_decimal, to_amount


@dataclass(frozen=True)
class ControlTotals:
    entry_count: int
    total_amount: Decimal


def control_totals(amounts: Iterable[Decimal]) -> ControlTotals:
    """The totals of a request's exported entries."""
    values = list(amounts)
    return ControlTotals(entry_count=len(values), total_amount=to_amount(sum(values, ZERO)))


def _plural(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def posting_totals_refusals(
    exported: ControlTotals,
    entry_count: int | None,
    total_amount: Decimal | None,
    *,
    required: bool,
    path: Sequence[str] = ("input",),
    names: tuple[str, str] = ("entryCount", "totalAmount"),
) -> list[DomainError]:
    """Why a posting confirmation with these totals is refused (empty: it may go ahead). `path` + a name is the
    field at fault; `names` are how the caller's input spells the two totals."""
    count_name, total_name = names
    errors: list[DomainError] = []
    if entry_count is None:
        if required:
            errors.append(
                ValidationError(
                    "the company's ERP connection requires the posting journal's entry count to confirm posting",
                    (*path, count_name),
                )
            )
    elif entry_count != exported.entry_count:
        errors.append(
            PostingTotalsMismatchError(
                f"the posting shows {_plural(entry_count)}, but the request exported {_plural(exported.entry_count)}",
                (*path, count_name),
            )
        )
    if total_amount is None:
        if required:
            errors.append(
                ValidationError(
                    "the company's ERP connection requires the posting journal's total amount to confirm posting",
                    (*path, total_name),
                )
            )
    elif total_amount != exported.total_amount:
        errors.append(
            PostingTotalsMismatchError(
                f"the posting totals {format_decimal(to_amount(total_amount))}, but the request's exported entries "
                f"total {format_decimal(exported.total_amount)}",
                (*path, total_name),
            )
        )
    return errors
