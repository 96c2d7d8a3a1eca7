"""A budget from lock to synced in the browser alone: the PM locks and sends, the approver accepts, the export
worker writes to the embedded ERP, the approver confirms the posting; each page follows the other's moves live."""

from __future__ import annotations

import re

from tests.browser.conftest import OpenTab, expect
from tests.browser.support import LIVE_TIMEOUT_MS, SYNC_PROJECT, Company
from tests.live_server import LiveServer

ROWS = "#queue-panel tbody tr"


async def test_a_budget_goes_from_lock_to_synced_in_the_browser(
    open_tab: OpenTab, server: LiveServer, company: Company
) -> None:
    await company.ok("pm", SYNC_PROJECT, p=company.projects["riverside"])
    approver = await open_tab()
    await approver.sign_in(company.token("approver"))
    pm = await open_tab()
    await pm.sign_in(company.token("pm"), f"/budgets/{company.budgets['riverside']}")

    # The PM locks and sends.
    await pm.page.get_by_role("button", name="Lock budget").click()
    await expect(pm.page.locator(".notice.success")).to_contain_text("Budget locked.")
    await pm.page.get_by_role("button", name="Send to ERP").click()
    await expect(pm.page.locator(".notice.success")).to_contain_text("Sent to the ERP")

    # The approver sees it arrive, opens it and accepts.
    row = approver.page.locator(ROWS, has_text="Riverside Medical Office Building")
    await expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    await row.get_by_role("link").click()
    await approver.page.get_by_role("button", name="Accept and export").click()

    # The worker exports to the embedded ERP; the entries wait for posting in Job Cost.
    status = approver.page.locator(".status-line")
    await expect(status).to_contain_text("Awaiting posting", timeout=LIVE_TIMEOUT_MS)
    await expect(pm.page.locator(".status-line")).to_contain_text("Awaiting posting", timeout=LIVE_TIMEOUT_MS)

    # The approver (ERP Integrations admin) confirms the posting: synced, on both pages.
    await approver.page.get_by_label(re.compile("^ERP reference")).fill("JC-2026-0042")
    await approver.page.get_by_role("button", name="Confirm posting").click()
    await expect(status).to_contain_text("Synced", timeout=LIVE_TIMEOUT_MS)
    await expect(approver.page.locator(".facts")).to_contain_text("JC-2026-0042")
    await expect(pm.page.locator(".status-line")).to_contain_text("Synced", timeout=LIVE_TIMEOUT_MS)
    await expect(pm.page.locator("#send-blockers")).to_contain_text(
        "Everything in this budget has already been exported."
    )
    await approver.screenshot("request-synced", full_page=True)
    approver.assert_clean()
    pm.assert_clean()
