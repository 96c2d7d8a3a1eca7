"""`viewerCan`: what the viewer may do with a budget or an ERP request right now (resolvers.viewer_can).

Each flag is resolved on its own, so a client pays only for the flags it selects (`send` computes the
export state, the others read the budget's state and the viewer's rights)."""

from __future__ import annotations

import strawberry

from persistence.records import BudgetRecord, ErpRequestRecord
from resolvers.viewer_can import BudgetAction, ErpRequestAction, budget_can, request_can
from schema.common import Ctx, described


@strawberry.type(description="Whether each action would succeed now for the viewer: the same checks the mutations run.")
class BudgetActions:
    record: strawberry.Private[BudgetRecord]

    @described(
        "updateBudgetLineItem / deleteBudgetLineItem would pass the budget's checks (Standard or Admin on the "
        "Budget tool, budget unlocked, no export in progress). A locked budget still takes new lines of amount 0."
    )
    async def edit_lines(self, info: Ctx) -> bool:
        return await budget_can(info.context, self.record, BudgetAction.EDIT_LINES)

    @described("createBudgetModification would pass the budget's checks (see BUDGET_NOT_LOCKED, EXPORT_IN_PROGRESS).")
    async def create_modification(self, info: Ctx) -> bool:
        return await budget_can(info.context, self.record, BudgetAction.CREATE_MODIFICATION)

    @described("lockBudget would succeed.")
    async def lock(self, info: Ctx) -> bool:
        return await budget_can(info.context, self.record, BudgetAction.LOCK)

    @described("unlockBudget would succeed: unlockBlockers is empty.")
    async def unlock(self, info: Ctx) -> bool:
        return await budget_can(info.context, self.record, BudgetAction.UNLOCK)

    @described("sendToERP would succeed: sendBlockers is empty.")
    async def send(self, info: Ctx) -> bool:
        return await budget_can(info.context, self.record, BudgetAction.SEND)

    @described("retrieveBudget would succeed (its latest request is pending acceptance).")
    async def retrieve(self, info: Ctx) -> bool:
        return await budget_can(info.context, self.record, BudgetAction.RETRIEVE)


@strawberry.type(description="Whether each action on this request would succeed now for the viewer.")
class ErpRequestActions:
    record: strawberry.Private[ErpRequestRecord]

    @described("decideExport with ACCEPT would succeed.")
    async def accept(self, info: Ctx) -> bool:
        return await request_can(info.context, self.record, ErpRequestAction.ACCEPT)

    @described("decideExport with REJECT and a reason would succeed.")
    async def reject(self, info: Ctx) -> bool:
        return await request_can(info.context, self.record, ErpRequestAction.REJECT)

    @described("retrieveBudget of its budget would retrieve this request.")
    async def retrieve(self, info: Ctx) -> bool:
        return await request_can(info.context, self.record, ErpRequestAction.RETRIEVE)

    @described("retryExport would succeed.")
    async def retry_export(self, info: Ctx) -> bool:
        return await request_can(info.context, self.record, ErpRequestAction.RETRY_EXPORT)

    @described("confirmJobCostPosting would succeed (given the control totals, where the connection requires them).")
    async def confirm_posting(self, info: Ctx) -> bool:
        return await request_can(info.context, self.record, ErpRequestAction.CONFIRM_POSTING)
