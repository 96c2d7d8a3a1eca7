"""A test-owned entry point: `budgetbridge worker` for one company (the export worker and the notifier, from the
settings in the environment) with a crash hook that kills the process right after the SMTP server accepted a
message and before the delivery is recorded (as a power cut or an OOM kill would). Run as
`python -m tests.notify.crashing_notifier COMPANY_ID` from the repository root; exits with status 70 at the
first delivered notification.

Only this test's process dies this way: production code has no crash flag, the hook is injected.
"""

from __future__ import annotations

import asyncio
import os
import sys

from app.export_worker import run_worker
from app.settings import Settings

CRASH_STATUS = 70


def crash() -> None:
    os._exit(CRASH_STATUS)  # no clean-up, no rollback: the transaction that records the delivery never starts


def main(argv: list[str]) -> int:
    (company_id,) = argv
    asyncio.run(run_worker(Settings.from_env(), company_id, after_send=crash))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
