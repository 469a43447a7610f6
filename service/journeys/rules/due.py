"""When the analytics job must look at a user again: the earliest instant after a run at which
anything the job stores about the user (segments, a stage transition, new offers) can differ
from what it stored, if no new data about the user arrives. Pure: a function of the same data
the classification and the offer plan used, and the run's instant.

New data is the other half of "due", not decided here: every write that can change a user's
inputs (an accepted event, the claim's `offer_claimed` event, a profile upsert moving
`lastSeenAt`) marks the user due at once, and so does a tenant-wide change (catalogue,
holdout share, `RULES_VERSION`), which recomputes the whole tenant.

What the job stores, and when it can change with the data held fixed
---------------------------------------------------------------------
Classification (`segments.classify`) reads the profile's all-time figures (total events,
active days, campaigns, first and last seen: fixed without new data), two 30-day window
sums (plays, points earned; the 7-day windows feed only the live recommendations, which the
job does not store) and the instant, through "days since" floored to whole 24-hour days:

1. Days since last seen, d. With events, the score's recency term R = 30 - d changes at each
   whole day up to 30, and the stage at 14 (at_risk) and 31 (churned): so every next day
   `last_seen + (d + 1) days` while d < 31. The churn risk rises with d for ever, but in
   ever longer steps; `segments.churn_risk_rises_on_day` gives the exact next day (one
   division). Without events score and risk are 0 and only the stage edges 14 and 31 count.
2. Days since first seen, for `new` (<= 7 days and <= 3 events): `first_seen + 8 days`,
   while the user is within those 7 days and has at most 3 events.
3. The 30-day windows count events at or after `as_of - 30 days`: a play or a positive-points
   event leaves at `occurred_at + 30 days` + 1 µs (storage finds the earliest such event of
   the window's partial first day, or, failing one, the first later day with any and gives
   that day's start + 30 days: no later than its first event leaves). Plays and points
   outside the window, or of no weight, never move a window sum.

Offers (`offers.plan_offers`). After planning a user at instant T, either all 3 slots are
held or no type is available (`plan_offers` fills min(free slots, available types) and never
stops early). So with the data fixed, the user gets a new offer at a later instant only if a
slot frees or a type becomes available, and only at one of these instants:

4. An active offer expires (`expires_at`: the sweep frees its slot and starts its cooldown);
   a claim frees one too, but the claim writes an event, which marks the user.
5. A type's cooldown ends: `last ended + cooldown` (ended = claimed at or expires at).
6. A `once_per_utc_day` type made today becomes available at the next UTC midnight.
7. The classification changes (1-3), changing which types qualify.

Holdout, the catalogue (enabled, validity, cooldowns, priorities) and the rule code are fixed
per tenant between two tenant-wide recomputes; the 60-day inactivity edge only ever removes
offers, so with no type available it changes nothing.

The learned choice (`learning.rank`: tenant-wide outcomes, decayed by recency at every
instant, and the sampler) only orders the available types when more are available than slots
are free, i.e. only when offers are being made. Between two due instants a user gets no
offers whatever the outcomes say, so outcomes changing every run need not make anyone due.
When a due user is planned, an incremental run and a full one see the same outcomes: they
change only by claims and by the expiry sweep, which runs over the whole tenant in both. The
sampler is drawn per user (`usecases/offer_plan.py`), so the draws do not depend on which
other users a run plans, nor in what order.

Hence: if a run at T recomputed the user, no later run before `next_change_at(...)` would
store anything different for them, unless new data arrives. Instants at or before T are not
candidates (they have happened; the run at T saw them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta

from journeys.rules.offers import CatalogueEntry, OfferHistory
from journeys.rules.segments import (
    AT_RISK_FROM_DAYS,
    CHURNED_AFTER_DAYS,
    NEW_MAX_DAYS_SINCE_FIRST_SEEN,
    NEW_MAX_TOTAL_EVENTS,
    ONE_DAY,
    RECENCY_WINDOW_DAYS,
    Activity,
    churn_risk_rises_on_day,
    days_since,
)

#: Bump when a rule changes what it computes from the same data: every tenant is then
#: recomputed whole once (the job compares it with what the tenant was last computed by).
RULES_VERSION = "2026-12-04.1"

#: The window whose sums the classification reads.
WINDOW = timedelta(days=RECENCY_WINDOW_DAYS)
_JUST_AFTER = timedelta(microseconds=1)


def window_exit(
    earliest_counted_at: datetime | None, first_counted_day_start: datetime | None
) -> datetime | None:
    """When the first event that moves a window sum leaves the 30-day window: from the
    earliest such event of the window's partial first day, else from the start of the first
    later day that has one (3. in the module's docstring)."""
    if earliest_counted_at is not None:
        return earliest_counted_at + WINDOW + _JUST_AFTER
    if first_counted_day_start is not None:
        return first_counted_day_start + WINDOW
    return None


def classification_changes_at(
    activity: Activity, window_exit_at: datetime | None, as_of: datetime
) -> datetime | None:
    """The earliest instant after `as_of` at which `classify` can give another result for
    this activity (1-3 in the module's docstring); None if never."""
    candidates: list[datetime | None] = [window_exit_at]
    has_events = activity.total_events > 0
    if activity.last_seen_at is not None:
        silent = days_since(activity.last_seen_at, as_of)
        if has_events:
            if silent <= CHURNED_AFTER_DAYS:
                candidates.append(activity.last_seen_at + (silent + 1) * ONE_DAY)
            rises = churn_risk_rises_on_day(activity, silent)
            if rises is not None:
                candidates.append(activity.last_seen_at + rises * ONE_DAY)
        else:
            edge = next(
                (days for days in (AT_RISK_FROM_DAYS, CHURNED_AFTER_DAYS + 1) if days > silent),
                None,
            )
            if edge is not None:
                candidates.append(activity.last_seen_at + edge * ONE_DAY)
    if (
        activity.first_seen_at is not None
        and activity.total_events <= NEW_MAX_TOTAL_EVENTS
        and days_since(activity.first_seen_at, as_of) <= NEW_MAX_DAYS_SINCE_FIRST_SEEN
    ):
        candidates.append(activity.first_seen_at + (NEW_MAX_DAYS_SINCE_FIRST_SEEN + 1) * ONE_DAY)
    return _earliest(candidates, as_of)


def offers_change_at(
    history: OfferHistory, catalogue: Sequence[CatalogueEntry], as_of: datetime
) -> datetime | None:
    """The earliest instant after `as_of` at which a slot frees or a type's cooldown or
    once-a-day block ends (4-6 in the module's docstring), for `history` as it stands after
    this run's offers; None if never."""
    entries = {entry.offer_type: entry for entry in catalogue if entry.enabled}
    candidates: list[datetime | None] = list(history.active_expires_at.values())
    for offer_type, ended in history.last_ended_at.items():
        entry = entries.get(offer_type)
        if entry is not None:
            candidates.append(ended + entry.cooldown)
    for offer_type, created in history.last_created_at.items():
        entry = entries.get(offer_type)
        if entry is not None and entry.once_per_utc_day and created.date() == as_of.date():
            candidates.append(datetime.combine(created.date() + ONE_DAY, time(), tzinfo=UTC))
    return _earliest(candidates, as_of)


def after_planning(
    history: OfferHistory, planned: Iterable[tuple[str, datetime]], as_of: datetime
) -> OfferHistory:
    """The history once this run's offers, (type, expires at), are made at `as_of`."""
    made = dict(planned)
    if not made:
        return history
    return OfferHistory(
        active_types=history.active_types | made.keys(),
        last_ended_at=history.last_ended_at,
        last_created_at={**history.last_created_at, **dict.fromkeys(made, as_of)},
        active_expires_at={**history.active_expires_at, **made},
    )


def next_change_at(
    activity: Activity,
    window_exit_at: datetime | None,
    history: OfferHistory,
    catalogue: Sequence[CatalogueEntry],
    as_of: datetime,
) -> datetime | None:
    """When the job must recompute this user next, new data aside (the module's docstring):
    the earlier of the classification's and the offers' next change; None if neither can
    change."""
    return _earliest(
        [
            classification_changes_at(activity, window_exit_at, as_of),
            offers_change_at(history, catalogue, as_of),
        ],
        as_of,
    )


def _earliest(candidates: Iterable[datetime | None], as_of: datetime) -> datetime | None:
    future = [moment for moment in candidates if moment is not None and moment > as_of]
    return min(future, default=None)


__all__ = [
    "RULES_VERSION",
    "after_planning",
    "classification_changes_at",
    "next_change_at",
    "offers_change_at",
    "window_exit",
]
