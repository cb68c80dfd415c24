"""The limits WorkMail sets on export jobs, configurable for tests and private deployments.

* At most ``max_running_per_org`` (10) jobs RUNNING per organization.
* One export per mailbox per ``mailbox_interval`` (24 hours). Only RUNNING and COMPLETED jobs
  use up the interval: a job that FAILED or was CANCELLED produced no export, so the
  administrator may fix the cause and start again at once.
* ListMailboxExportJobs shows the jobs started in the last ``list_window`` (7 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Limits:
    max_running_per_org: int = 10
    mailbox_interval: timedelta = timedelta(hours=24)
    list_window: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.max_running_per_org < 1:
            raise ValueError("at least one running export per organization must be allowed")
        if self.mailbox_interval < timedelta(0):
            raise ValueError("the per-mailbox interval must not be negative")
