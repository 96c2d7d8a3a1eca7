from tests.support import Tenant


async def test_viewer_is_the_authenticated_user(tenant: Tenant) -> None:
    data = await tenant.ok("admin", "{ viewer { id name company { id currency } } }")
    assert data["viewer"]["id"] == tenant.users["admin"]
    assert data["viewer"]["company"] == {"id": tenant.company_id, "currency": "USD"}
