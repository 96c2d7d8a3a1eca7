"""A worker process killed between the ERP write and our commit: after a restart every entry is in the
ERP exactly once (the connector de-duplicates on the export id; the job's lease lets another run claim it).

The crashing worker is tests/erp/crashing_worker.py: the worker that `budgetbridge worker` runs, built from the same
settings, with a crash hook injected right after the connector's export. The restarted one is the real CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

from persistence.tables import erp_job_cost_entries, export_entries
from resolvers.context import Services
from tests.erp.crashing_worker import CRASH_STATUS
from tests.erp.workflow import accept, add_line, lock_and_send, request
from tests.support import JWT_SECRET, make_tenant
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]  # `-m tests.erp.crashing_worker` resolves from the repository root


def worker_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETBRIDGE_")}
    env.update(
        BUDGETBRIDGE_DATABASE_URL=db_url,
        BUDGETBRIDGE_JWT_SECRET=JWT_SECRET,
        BUDGETBRIDGE_EXPORT_TIMEOUT_SECONDS="1",
        BUDGETBRIDGE_EXPORT_LEASE_SECONDS="2",
        BUDGETBRIDGE_EXPORT_POLL_SECONDS="0.1",
        **extra,
    )
    return env


async def start_worker(company_id: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await _spawn(["-m", "app.cli", "worker", "--company", company_id], env)


async def start_crashing_worker(company_id: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await _spawn(["-m", "tests.erp.crashing_worker", company_id], env)


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_a_worker_killed_after_the_erp_write_exports_each_entry_exactly_once(services: Services) -> None:
    tenant = await make_tenant(services)
    for code, ctype, amount in (("03-300", "L", "1200.00"), ("05-120", "S", "45000.00"), ("09-900", "M", "0.00")):
        await add_line(tenant, code, ctype, amount)
    request_id = await lock_and_send(tenant)
    await accept(tenant, request_id)
    db_url = services.db.url

    crashing = await start_crashing_worker(tenant.company_id, worker_env(db_url))
    _, stderr = await asyncio.wait_for(crashing.communicate(), 60)
    assert crashing.returncode == CRASH_STATUS, stderr.decode()[-2000:]
    assert (await request(tenant, request_id))["status"] == "EXPORTING"  # the ERP has it, we never recorded it
    async with services.db.read() as conn:
        written = (
            await conn.execute(
                select(func.count())
                .select_from(erp_job_cost_entries)
                .where(erp_job_cost_entries.c.batch.like(f"%{request_id[4:]}%"))
            )
        ).scalar_one()
    assert written == 3

    restarted = await start_worker(tenant.company_id, worker_env(db_url))
    try:
        # The worker is another process that announces nothing to this one: poll the request (one helper).
        async def exported() -> bool:
            return bool((await request(tenant, request_id))["status"] != "EXPORTING")

        await eventually(exported, timeout=30, what="the restarted worker to record the export")
        done = await request(tenant, request_id)
    finally:
        restarted.terminate()
        await asyncio.wait_for(restarted.wait(), 15)
    assert done["status"] == "AWAITING_POSTING"
    async with services.db.read() as conn:
        ours = set(
            (await conn.execute(select(export_entries.c.id).where(export_entries.c.request_id == request_id))).scalars()
        )
        in_erp = list(
            (
                await conn.execute(
                    select(erp_job_cost_entries.c.source_entry_id).where(
                        erp_job_cost_entries.c.batch == done["erpReference"]
                    )
                )
            ).scalars()
        )
    assert sorted(in_erp) == sorted(ours)  # every entry, each exactly once
