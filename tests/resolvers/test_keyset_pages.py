"""Keyset pages of projects: a project that sorts before the cursor (created earlier, as an import with an
old creation time would) shifts no later page; one that sorts after it shows up in its place."""

from __future__ import annotations

from resolvers.context import Services
from tests.resolvers.spa_support import PROJECT, Session, new_world

PROJECTS = """query($after: String) { projects(first: 2, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }"""


async def test_projects_page_by_creation_time_and_id_whatever_is_added_between_fetches(services: Services) -> None:
    world = await new_world(services)  # its own project was created at minute 0
    session = Session(world.tenant)

    async def project_at(minutes: float, number: str) -> str:
        world.clock.at(minutes)
        created = await session.run("admin", PROJECT, n=number)
        return str(created["project"]["id"])

    ten, twenty, thirty = [await project_at(m, f"N-{m}") for m in (10, 20, 30)]
    first = (await session.execute("admin", PROJECTS))["projects"]
    assert [edge["node"]["id"] for edge in first["edges"]] == [world.tenant.project_id, ten]
    earlier = await project_at(5, "N-5")  # sorts before the cursor
    later = await project_at(25, "N-25")  # sorts after it
    seen = [edge["node"]["id"] for edge in first["edges"]]
    after = first["pageInfo"]["endCursor"]
    while after is not None:
        page = (await session.execute("admin", PROJECTS, after=after))["projects"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert seen == [world.tenant.project_id, ten, twenty, later, thirty]
    assert earlier not in seen and page["totalCount"] == 6
