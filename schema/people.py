"""The company and its users."""

from __future__ import annotations

import strawberry

from persistence.records import CompanyRecord, UserRecord
from schema.common import Ctx, Node, described, node_id
from schema.enums import PermissionLevel
from schema.notifications import NotificationSettings, viewer_settings


@strawberry.type(description="The viewer's company (the tenant): nothing of another company is ever visible.")
class Company(Node):
    id: strawberry.ID = node_id("Company")
    name: str = strawberry.field(description="The company's name.")
    currency: str = strawberry.field(
        description="ISO 4217 code of the currency every amount is in (e.g. USD, the default)."
    )

    @classmethod
    def from_record(cls, r: CompanyRecord) -> Company:
        return cls(id=strawberry.ID(r.id), name=r.name, currency=r.currency)


@strawberry.type(description="A person of the viewer's company.")
class User(Node):
    id: strawberry.ID = node_id("User")
    name: str = strawberry.field(description="The user's display name.")
    email: str = strawberry.field(description="The user's email address (notifications go there).")
    is_accounting_approver: bool = strawberry.field(
        description="May accept and reject requests in the ERP Integrations queue and retry failed exports (with "
        "ERP Integrations STANDARD or ADMIN)."
    )
    erp_integrations_permission: PermissionLevel = strawberry.field(
        description="The user's permission on the company's ERP Integrations tool."
    )
    company_id: strawberry.Private[str]

    @described("The user's company (the viewer's).")
    async def company(self, info: Ctx) -> Company:
        company = await info.context.loaders.company.load(self.company_id)
        assert company is not None, "a user's company exists"
        return Company.from_record(company)

    @described("Which notifications this user receives. Only the viewer's own: null for anyone else.")
    async def notification_settings(self, info: Ctx) -> NotificationSettings | None:
        if str(self.id) != info.context.actor.user_id:
            return None
        return await viewer_settings(info.context)

    @classmethod
    def from_record(cls, r: UserRecord) -> User:
        return cls(
            id=strawberry.ID(r.id),
            name=r.name,
            email=r.email,
            is_accounting_approver=r.is_accounting_approver,
            erp_integrations_permission=PermissionLevel[r.erp_permission],
            company_id=r.company_id,
        )


async def load_user(info: Ctx, user_id: str | None) -> User | None:
    if user_id is None:
        return None
    user = await info.context.loaders.user.load(user_id)
    return User.from_record(user) if user is not None else None


async def load_known_user(info: Ctx, user_id: str) -> User:
    """A user a record points at (creator, sender): always in the viewer's company."""
    user = await load_user(info, user_id)
    assert user is not None, f"user {user_id} is referenced but missing"
    return user
