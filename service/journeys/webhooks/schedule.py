"""What an attempt's answer means for its message: pure, table-tested."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from journeys.domain import DeliveryStatus

#: Seconds before each retry: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Part C).
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
GONE = 410


@dataclass(frozen=True)
class Verdict:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    #: The endpoint said 410 Gone: disable the webhook.
    disable: bool = False


def verdict(
    attempt: int, response_status: int | None, retry_schedule: Sequence[float], now: datetime
) -> Verdict:
    """After attempt number `attempt` (from 1) was answered `response_status` (None: no
    answer at all): delivered on any 2xx, the webhook disabled on 410, else retried after
    the schedule's next delay, or failed once the schedule is spent."""
    if response_status is not None and 200 <= response_status < 300:
        return Verdict(DeliveryStatus.DELIVERED, None)
    if response_status == GONE:
        return Verdict(DeliveryStatus.FAILED, None, disable=True)
    if attempt > len(retry_schedule):
        return Verdict(DeliveryStatus.FAILED, None)
    return Verdict(DeliveryStatus.PENDING, now + timedelta(seconds=retry_schedule[attempt - 1]))
