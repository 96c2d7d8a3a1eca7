"""What mutations return: the outcome's refusals (userErrors) and the objects it changed, each read after the
commit through the request's loaders, and only when the mutation's selection asks for it (a line update that
selects only `lineItem { id originalAmount }` reads neither the budget nor the line's export state)."""

from __future__ import annotations

from typing import Any, Optional, Self

import strawberry

from resolvers.context import Context
from resolvers.service import Outcome
from schema.budgets import Budget, BudgetLineItem, BudgetModification
from schema.common import Ctx, UserError, described, selects, user_errors, user_errors_field
from schema.projects import CostCode, CostType, Project
from schema.requests import ErpRequest

BUDGET_AFTER = "Its budget after the change; null when refused."


class Loaded:
    """Loads the objects named in a mutation's outcome, when a payload field asks."""

    def __init__(self, ctx: Context, outcome: Outcome) -> None:
        self.ctx, self.changed, self.errors = ctx, outcome.changed, user_errors(outcome.errors)

    @staticmethod
    async def _load(object_id: str | None, loader: Any) -> Any:
        return await loader.load(object_id) if object_id else None

    async def budget(self) -> Budget | None:
        row = await self._load(self.changed.budget_id, self.ctx.loaders.budget)
        return Budget.from_record(row, self.ctx.viewer.currency) if row else None

    async def project(self) -> Project | None:
        row = await self._load(self.changed.project_id, self.ctx.loaders.project)
        return Project.from_record(row) if row else None

    async def erp_request(self) -> ErpRequest | None:
        row = await self._load(self.changed.erp_request_id, self.ctx.loaders.erp_request)
        return ErpRequest.from_record(row) if row else None

    async def line_item(self, synced: bool) -> BudgetLineItem | None:
        """The line; its erpSynced (two more statements) only when `synced`."""
        loaders = self.ctx.loaders
        view = await self._load(self.changed.line_item_id, loaders.line_item if synced else loaders.line_item_unsynced)
        return BudgetLineItem.from_view(view) if view else None

    async def modification(self) -> BudgetModification | None:
        view = await self._load(self.changed.modification_id, self.ctx.loaders.modification)
        return BudgetModification.from_view(view) if view else None

    async def cost_code(self) -> CostCode | None:
        row = await self._load(self.changed.cost_code_id, self.ctx.loaders.cost_code)
        return CostCode.from_record(row) if row else None

    async def cost_type(self) -> CostType | None:
        row = await self._load(self.changed.cost_type_id, self.ctx.loaders.cost_type)
        return CostType.from_record(row) if row else None


@strawberry.type
class _Payload:
    """userErrors, known when the mutation returns; the objects are resolvers of the subclasses."""

    loaded: strawberry.Private[Loaded]
    user_errors: list[UserError] = user_errors_field()

    @classmethod
    def of(cls, ctx: Context, outcome: Outcome) -> Self:
        loaded = Loaded(ctx, outcome)
        return cls(loaded=loaded, user_errors=loaded.errors)


@strawberry.type(description="The outcome of createProject or syncProjectToERP.")
class ProjectPayload(_Payload):
    @described("The project created or synced; null when refused.")
    async def project(self) -> Optional[Project]:
        return await self.loaded.project()


@strawberry.type(description="The outcome of createCostCode.")
class CostCodePayload(_Payload):
    @described("The cost code created; null when refused.")
    async def cost_code(self) -> Optional[CostCode]:
        return await self.loaded.cost_code()


@strawberry.type(description="The outcome of createCostType.")
class CostTypePayload(_Payload):
    @described("The cost type created; null when refused.")
    async def cost_type(self) -> Optional[CostType]:
        return await self.loaded.cost_type()


@strawberry.type(description="The outcome of a mutation on a budget.")
class BudgetPayload(_Payload):
    @described("The budget after the change (read after the commit); null when refused.")
    async def budget(self) -> Optional[Budget]:
        return await self.loaded.budget()


@strawberry.type(description="The outcome of createBudgetLineItem or updateBudgetLineItem.")
class BudgetLineItemPayload(_Payload):
    @described("The line created or changed; null when refused.")
    async def line_item(self, info: Ctx) -> Optional[BudgetLineItem]:
        return await self.loaded.line_item(synced=selects(info, "erpSynced"))

    @described(BUDGET_AFTER)
    async def budget(self) -> Optional[Budget]:
        return await self.loaded.budget()


@strawberry.type(description="The outcome of createBudgetModification.")
class BudgetModificationPayload(_Payload):
    @described("The modification created; null when refused.")
    async def modification(self) -> Optional[BudgetModification]:
        return await self.loaded.modification()

    @described(BUDGET_AFTER)
    async def budget(self) -> Optional[Budget]:
        return await self.loaded.budget()


@strawberry.type(description="The outcome of a mutation on an ERP request.")
class ErpRequestPayload(_Payload):
    @described("The request created or moved, after the change; null when refused.")
    async def erp_request(self) -> Optional[ErpRequest]:
        return await self.loaded.erp_request()

    @described(BUDGET_AFTER)
    async def budget(self) -> Optional[Budget]:
        return await self.loaded.budget()
