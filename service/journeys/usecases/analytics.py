"""The analytics job: recompute every user's segments, record stage transitions, expire
offers and generate new ones, tenant by tenant, in chunks with flat memory."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from journeys import observability, rules
from journeys.domain import (
    ANALYTICS_DUE_NOW,
    Announcement,
    ComputedSegments,
    NewOffer,
    OfferRecord,
    StageChange,
    Tenant,
    UserCounters,
    WebhookEvent,
    utc_now,
)
from journeys.rules import LifecycleStage, OfferHistory, due
from journeys.storage.analytics_state import AnalyticsState
from journeys.storage.database import Database
from journeys.storage.tenant_store import TenantStore
from journeys.usecases import offer_plan

log = logging.getLogger(__name__)

LEASE_NAME = "analytics"
LEASE_TTL = timedelta(seconds=120)
CHUNK_SIZE = 1000
#: A profile's stage before any run has classified it (every profile starts `new`).
INITIAL_STAGE = LifecycleStage.NEW.value
NO_OFFERS = OfferHistory()
FULL = "full"
INCREMENTAL = "incremental"

Progress = Callable[[int, int], None]


@dataclass
class RunSummary:
    run_id: str
    as_of: datetime
    #: `full` (every user) or `incremental` (the due ones, `rules/due.py`).
    mode: str = INCREMENTAL
    #: Users recomputed.
    users_scanned: int = 0
    #: Of those, the ones recomputed because new data arrived or no run had classified them.
    users_with_new_data: int = 0
    tenants: int = 0
    #: Tenants recomputed whole: a full run, or a changed catalogue, holdout or rules.
    tenants_full: int = 0
    transitions: int = 0
    offers_created: int = 0
    offers_expired: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"analytics run {self.run_id} ({self.mode}) as of "
            f"{self.as_of:%Y-%m-%dT%H:%M:%SZ}: {self.users_scanned} users scanned "
            f"({self.users_with_new_data} with new data; {self.tenants_full} of "
            f"{self.tenants} tenants whole), {self.transitions} stage transitions, "
            f"{self.offers_created} offers created, {self.offers_expired} offers expired "
            f"in {self.seconds:.1f}s"
        )


class LeaseLost(RuntimeError):
    """Another process took the lease: this run stops before it could double-generate."""


class AnalyticsJob:
    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        chunk_size: int = CHUNK_SIZE,
        offer_seed: int | None = None,
        learning: bool = True,
    ) -> None:
        self._db = database
        self._clock = clock
        self._chunk_size = chunk_size
        self._offer_seed = offer_seed
        #: False: the fixed priority alone, as before the engine learned (a benchmark baseline).
        self._learning = learning
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run(
        self,
        as_of: datetime | None = None,
        *,
        wait: bool = True,
        progress: Progress | None = None,
        full: bool = False,
    ) -> RunSummary | None:
        """Runs once: incremental (only the users due, `rules/due.py`) or, with `full`,
        recomputing everyone. If another process holds the lease, waits for it (or, with
        `wait=False`, returns None at once)."""
        if not await self._take_lease(wait):
            return None
        started = time.monotonic()
        try:
            for table in await self._db.keep_partitions_ready(utc_now().date()):
                log.info("created events partition %s", table)
            async with self._db.transaction(write=True) as tx:
                as_of = (as_of or self._clock()).replace(microsecond=0)
                mode = FULL if full else INCREMENTAL
                summary = RunSummary(await tx.jobs.start_run(as_of, utc_now(), mode), as_of, mode)
                tenants = await tx.jobs.tenants()
                population = await tx.jobs.count_users()
            summary.tenants = len(tenants)
            try:
                for tenant in tenants:
                    await self._run_tenant(tenant, summary, population, progress)
            except BaseException:
                await self._finish(summary, "failed", started)
                raise
            await self._finish(summary, "succeeded", started)
            return summary
        finally:
            async with self._db.transaction(write=True) as tx:
                await tx.jobs.release_lease(LEASE_NAME, self._holder)

    async def _take_lease(self, wait: bool) -> bool:
        while True:
            async with self._db.transaction(write=True) as tx:
                now = utc_now()
                if await tx.jobs.take_lease(LEASE_NAME, self._holder, now, now + LEASE_TTL):
                    return True
            if not wait:
                return False
            await asyncio.sleep(1)

    async def _finish(self, summary: RunSummary, status: str, started: float) -> None:
        summary.seconds = time.monotonic() - started
        observability.analytics_run_finished(status, summary.seconds, summary.offers_created)
        async with self._db.transaction(write=True) as tx:
            await tx.jobs.finish_run(
                summary.run_id,
                utc_now(),
                status=status,
                users_scanned=summary.users_scanned,
                transitions=summary.transitions,
                offers_created=summary.offers_created,
                offers_expired=summary.offers_expired,
                users_with_new_data=summary.users_with_new_data,
                tenants_full=summary.tenants_full,
            )

    async def full_run_due(self, every: timedelta) -> bool:
        """Whether no full run has succeeded within `every` (the schedule's safety net: a
        full run recomputes what an incremental one proves unchanged)."""
        async with self._db.transaction(write=False) as tx:
            last = await tx.jobs.last_full_run_started_at()
        return last is None or utc_now() - last >= every

    async def _run_tenant(
        self, tenant: Tenant, summary: RunSummary, population: int, progress: Progress | None
    ) -> None:
        as_of = summary.as_of
        async with self._db.transaction(write=True) as tx:
            store = tx.tenant(tenant)
            subscriptions = await store.subscriptions()
            if WebhookEvent.OFFER_EXPIRED in subscriptions:
                expiring = await store.expiring_offers(as_of)
                announced = [
                    Announcement(WebhookEvent.OFFER_EXPIRED, user_id, as_of, offer)
                    for user_id, offer in expiring
                ]
                await store.announce(announced, subscriptions, utc_now())
            summary.offers_expired += await store.expire_offers(as_of)
            plan = await offer_plan.load(store, tenant, as_of, self._offer_seed, self._learning)
            state = await store.analytics_state()
        # Due times hold only forward from the instant, and for the catalogue, holdout and
        # rules they were computed with: otherwise every user of the tenant is recomputed.
        whole = (
            summary.mode == FULL
            or state is None
            or state.fingerprint != plan.fingerprint
            or as_of < state.confirmed_as_of
        )
        summary.tenants_full += whole
        after = ""
        due_after: tuple[datetime, str] | None = None
        while True:
            async with self._db.transaction(write=True) as tx:
                if not await tx.jobs.renew_lease(LEASE_NAME, self._holder, utc_now() + LEASE_TTL):
                    raise LeaseLost("the analytics lease expired and was taken by another run")
                store = tx.tenant(tenant)
                if whole:
                    chunk = await store.users_after(after, self._chunk_size)
                else:
                    chunk = await store.due_users_after(as_of, due_after, self._chunk_size)
                if not chunk:
                    break
                transitions, planned = await self._recompute(store, chunk, plan, as_of)
            after = chunk[-1].external_id
            last = chunk[-1]
            # A user read due has a due time (the index range holds no null).
            due_after = (last.due_at or ANALYTICS_DUE_NOW, last.id)
            # SQLite transactions run on the event loop's thread: let requests in between chunks.
            await asyncio.sleep(0)
            summary.users_scanned += len(chunk)
            summary.users_with_new_data += sum(
                user.due_at is not None and user.due_at <= ANALYTICS_DUE_NOW for user in chunk
            )
            summary.transitions += len(transitions)
            summary.offers_created += len(planned)
            if progress is not None:
                progress(summary.users_scanned, population)
        async with self._db.transaction(write=True) as tx:
            await tx.tenant(tenant).record_analytics_state(AnalyticsState(plan.fingerprint, as_of))

    async def _recompute(
        self,
        store: TenantStore,
        chunk: Sequence[UserCounters],
        plan: offer_plan.OfferPlan,
        as_of: datetime,
    ) -> tuple[list[tuple[str, str, str]], list[NewOffer]]:
        """Classifies, plans and stores one chunk, with each user's next due instant; its
        stage transitions and new offers."""
        activities, exits = await store.activity_and_window_exits(chunk, as_of)
        # A profile no run has classified yet holds no offers: only this job creates
        # them, in the transaction that classifies the profile. A first run after a
        # bulk load thus reads no offers at all.
        histories = await store.offer_histories(
            [user.id for user in chunk if user.stored_stage is not None]
        )
        computed: list[ComputedSegments] = []
        transitions: list[tuple[str, str, str]] = []
        planned: list[NewOffer] = []
        for user in chunk:
            activity = activities[user.id]
            segments = rules.classify(activity, as_of)
            before = user.stored_stage or INITIAL_STAGE
            if before != segments.stage.value:
                transitions.append((user.id, before, segments.stage.value))
            history = histories.get(user.id, NO_OFFERS)
            offers = plan.offers_for(user, segments, history)
            planned.extend(offers)
            made = [(offer.offer_type, offer.expires_at) for offer in offers]
            computed.append(
                ComputedSegments(
                    user.id,
                    segments.stage.value,
                    segments.tier.value,
                    segments.engagement_score,
                    segments.churn_risk_score,
                    due_at=due.next_change_at(
                        activity,
                        exits.get(user.id),
                        due.after_planning(history, made, as_of),
                        plan.offer_types,
                        as_of,
                    ),
                    read=(user.total_events, user.first_seen_at, user.last_seen_at),
                )
            )
        await store.save_segments(computed, as_of)
        await store.add_transitions(transitions, as_of)
        offer_ids = await store.add_offers(planned, as_of)
        subscriptions = await store.subscriptions()
        if subscriptions:
            announced = _announcements(chunk, computed, transitions, planned, offer_ids, as_of)
            await store.announce(announced, subscriptions, utc_now())
        return transitions, planned


def _announcements(
    chunk: Sequence[UserCounters],
    computed: Sequence[ComputedSegments],
    transitions: Sequence[tuple[str, str, str]],
    planned: Sequence[NewOffer],
    offer_ids: Sequence[str],
    as_of: datetime,
) -> list[Announcement]:
    """What a chunk's changes announce: each stage change and each offer made."""
    external_ids = {user.id: user.external_id for user in chunk}
    segments = {item.user_id: item for item in computed}
    announced = [
        Announcement(
            WebhookEvent.STAGE_CHANGED,
            user_id,
            as_of,
            StageChange(
                external_id=external_ids[user_id],
                from_stage=before,
                to_stage=after,
                at=as_of,
                engagement_tier=segments[user_id].tier,
                engagement_score=segments[user_id].engagement_score,
                churn_risk_score=segments[user_id].churn_risk_score,
            ),
        )
        for user_id, before, after in transitions
    ]
    announced.extend(
        Announcement(
            WebhookEvent.OFFER_CREATED,
            offer.user_id,
            as_of,
            OfferRecord(
                id=offer_id,
                external_id=external_ids[offer.user_id],
                offer_type=offer.offer_type,
                game_type=offer.game_type,
                title=offer.title,
                description=offer.description,
                points_value=offer.points_value,
                status="active",
                expires_at=offer.expires_at,
                claimed_at=None,
                metadata=offer.metadata,
            ),
        )
        for offer, offer_id in zip(planned, offer_ids, strict=True)
    )
    return announced
