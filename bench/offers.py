"""`make bench-offers`: the learning offer engine against the fixed priority and an oracle, in
a simulated population driven through the real analytics job and the real claim use case
with an injected clock, over 60 simulated days (SQLite).

The population is built so that offer types compete for a slot (with the default catalogue
and empty slots they never do: no context qualifies for more than 3 types). Each user is
new on day 0 and gets the two welcome offers, which the simulation never claims and a
catalogue override keeps valid for a year: they hold two of the three slots. From day 1 each
user plays every day as a power user of the whale tier, so `vip_play` and
`multiplier_bonus` compete for the last slot (the override gives both a 3-day validity and
no cooldown, so every free slot is a choice between them). Every offer
of those two types is claimed, on the day it is made, with a hidden probability per type
(and, in scenario c, per half of the run); otherwise it expires.

Policies: `learned` (the engine as shipped), `priority` (learning off: the documented order,
vip_play first) and `oracle` (learning off, with a catalogue override that puts the type with
the higher hidden probability first, switched at the drift).

Scenarios: (a) the priority order is right; (b) it is wrong; (c) it is right for 30 days,
then wrong. Reported: claims per offer made of the competing types over the last 30 days
(and, for c, over days 41-50, the 10 days ending 20 days after the drift), and each
policy's ratio to the oracle. Targets (issue #18): b: learned >= 90 % of the oracle and
>= 1.2x the priority; a: learned within 5 % of the priority; c: learned >= 80 % of the oracle
in days 41-50.

    python -m bench.offers [--users 200] [--days 60] [--seed 18]

Writes bench/results/offers-latest.{md,json} (not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from journeys.domain import Environment, EventInput, Tenant, UserChanges
from journeys.storage.database import Database
from journeys.storage.schema import offers, users
from journeys.usecases import Journeys, catalogue, keys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.auth import Caller
from sqlalchemy import select

from scripts.stack import migrate

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PARTNER = "simulated"
COMPETING = ("vip_play", "multiplier_bonus")
#: The welcome offers hold two slots for the whole run; the competing types have no cooldown
#: and one validity, so each free slot is a choice between them and only their claim
#: probabilities differ.
BLOCKERS: dict[str, dict[str, Any]] = {
    "welcome_free_play": {"validity_hours": 24 * 365},
    "welcome_bonus": {"validity_hours": 24 * 365},
    "vip_play": {"validity_hours": 72, "cooldown_hours": 0},
    "multiplier_bonus": {"validity_hours": 72, "cooldown_hours": 0},
}
BATCH = 500


@dataclass(frozen=True)
class Scenario:
    name: str
    before: dict[str, float]
    after: dict[str, float]
    drift_day: int | None = None

    def probability(self, offer_type: str, day: int) -> float:
        late = self.drift_day is not None and day >= self.drift_day
        return (self.after if late else self.before)[offer_type]


SCENARIOS = (
    Scenario(
        "a: priority right",
        {"vip_play": 0.5, "multiplier_bonus": 0.25},
        {"vip_play": 0.5, "multiplier_bonus": 0.25},
    ),
    Scenario(
        "b: priority wrong",
        {"vip_play": 0.15, "multiplier_bonus": 0.5},
        {"vip_play": 0.15, "multiplier_bonus": 0.5},
    ),
    Scenario(
        "c: drift at day 30",
        {"vip_play": 0.5, "multiplier_bonus": 0.2},
        {"vip_play": 0.15, "multiplier_bonus": 0.5},
        drift_day=30,
    ),
)
POLICIES = ("learned", "priority", "oracle")


@dataclass
class Run:
    scenario: str
    policy: str
    made: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    claimed: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0

    def rate(self, first: int, last: int) -> float:
        made = sum(self.made[day] for day in range(first, last + 1))
        claimed = sum(self.claimed[day] for day in range(first, last + 1))
        return claimed / made if made else 0.0


def oracle_override(scenario: Scenario, day: int) -> dict[str, dict[str, Any]]:
    better_first = sorted(COMPETING, key=lambda kind: -scenario.probability(kind, day))
    ordered = {kind: {**BLOCKERS[kind], "priority": 6 + n} for n, kind in enumerate(better_first)}
    return {**BLOCKERS, **ordered}


async def simulate(
    scenario: Scenario, policy: str, population: int, days: int, seed: int, scratch: Path
) -> Run:
    url = f"sqlite+aiosqlite:///{scratch / f'{scenario.name[0]}-{policy}.db'}"
    await asyncio.to_thread(migrate, url)
    run = Run(scenario.name, policy)
    started = time.monotonic()
    draws = random.Random(seed)  # the same claim draws for every policy of a scenario
    async with Database(url) as database:
        now = START
        api = Journeys(database, clock=lambda: now)
        job = AnalyticsJob(
            database, clock=lambda: now, offer_seed=seed, learning=policy == "learned"
        )
        caller = Caller(await keys.create(database, PARTNER, Environment.TEST, now))
        override = oracle_override(scenario, 0) if policy == "oracle" else BLOCKERS
        await catalogue.override(database, PARTNER, Environment.TEST, now, override)
        async with database.transaction(write=True) as tx:
            partner_id = await tx.keys.partner_id(PARTNER)
            assert partner_id is not None
            tenant = Tenant(partner_id, Environment.TEST)
            await tx.tenant(tenant).set_holdout_share(0.0, now)
        names = [f"player-{n:05d}" for n in range(population)]
        for name in names:
            await api.track_user(caller, UserChanges(external_id=name))
        await job.run(now)  # day 0: the welcome offers
        await _plays(api, caller, names, now + timedelta(minutes=1), 60)
        for day in range(1, days + 1):
            now = START + timedelta(days=day)
            if policy == "oracle" and scenario.drift_day == day:
                await catalogue.override(
                    database, PARTNER, Environment.TEST, now, oracle_override(scenario, day)
                )
            await _plays(api, caller, names, now - timedelta(hours=1), 2)
            await job.run(now)
            for external_id, offer_id, offer_type in await _made(database, tenant, now):
                run.made[day] += 1
                if draws.random() < scenario.probability(offer_type, day):
                    await api.claim_offer(caller, external_id, offer_id)
                    run.claimed[day] += 1
    run.seconds = time.monotonic() - started
    return run


async def _plays(api: Journeys, caller: Caller, names: list[str], at: datetime, each: int) -> None:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    items = [
        EventInput(name, "GAME_PLAY", "spin", 20, stamp, "", {"won": True})
        for name in names
        for _ in range(each)
    ]
    for start in range(0, len(items), BATCH):
        await api.track_events(caller, items[start : start + BATCH])


async def _made(database: Database, tenant: Tenant, at: datetime) -> list[tuple[str, str, str]]:
    """The competing offers the run at `at` made (read as an observer, outside the service)."""
    statement = (
        select(users.c.external_id, offers.c.id, offers.c.offer_type)
        .join(users, (users.c.id == offers.c.user_id) & (users.c.partner_id == offers.c.partner_id))
        .where(
            offers.c.partner_id == tenant.partner_id,
            offers.c.created_at == at,
            offers.c.offer_type.in_(COMPETING),
        )
        .order_by(users.c.external_id)
    )
    async with database.engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(statement)]


def summarise(runs: list[Run], days: int) -> list[dict[str, Any]]:
    first = days - 29
    rows = []
    for scenario in SCENARIOS:
        by_policy = {run.policy: run for run in runs if run.scenario == scenario.name}
        oracle = by_policy["oracle"].rate(first, days)
        window = (41, 50) if scenario.drift_day else (first, days)
        oracle_window = by_policy["oracle"].rate(*window)
        for policy in POLICIES:
            run = by_policy[policy]
            rate = run.rate(first, days)
            rows.append(
                {
                    "scenario": scenario.name,
                    "policy": policy,
                    "offers": sum(run.made.values()),
                    "claims": sum(run.claimed.values()),
                    "claims_per_offer_last_30d": round(rate, 4),
                    "ratio_to_oracle_last_30d": round(rate / oracle, 3) if oracle else None,
                    "window": f"days {window[0]}-{window[1]}",
                    "claims_per_offer_in_window": round(run.rate(*window), 4),
                    "ratio_to_oracle_in_window": (
                        round(run.rate(*window) / oracle_window, 3) if oracle_window else None
                    ),
                    "ratio_to_priority_last_30d": (
                        round(rate / by_policy["priority"].rate(first, days), 3)
                        if by_policy["priority"].rate(first, days)
                        else None
                    ),
                    "seconds": round(run.seconds, 1),
                }
            )
    return rows


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    learned = {row["scenario"][0]: row for row in rows if row["policy"] == "learned"}
    b, a, c = learned["b"], learned["a"], learned["c"]
    return [
        (
            "b: learned >= 90 % of the oracle (last 30 days)",
            f"{b['ratio_to_oracle_last_30d']}",
            (b["ratio_to_oracle_last_30d"] or 0) >= 0.9,
        ),
        (
            "b: learned >= 1.2x the priority (last 30 days)",
            f"{b['ratio_to_priority_last_30d']}",
            (b["ratio_to_priority_last_30d"] or 0) >= 1.2,
        ),
        (
            "a: learned within 5 % of the priority (last 30 days)",
            f"{a['ratio_to_priority_last_30d']}",
            abs((a["ratio_to_priority_last_30d"] or 0) - 1) <= 0.05,
        ),
        (
            "c: learned >= 80 % of the oracle within 20 days of the drift (days 41-50)",
            f"{c['ratio_to_oracle_in_window']}",
            (c["ratio_to_oracle_in_window"] or 0) >= 0.8,
        ),
    ]


def markdown(rows: list[dict[str, Any]], checks: list[tuple[str, str, bool]], meta: str) -> str:
    lines = [
        f"## `make bench-offers`: {meta}",
        "",
        "| Scenario | Policy | Offers | Claims | Claims/offer, last 30 d | vs oracle | "
        "Window | vs oracle in window | vs priority |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['policy']} | {row['offers']} | {row['claims']} | "
            f"{row['claims_per_offer_last_30d']} | {row['ratio_to_oracle_last_30d']} | "
            f"{row['window']} | {row['ratio_to_oracle_in_window']} | "
            f"{row['ratio_to_priority_last_30d']} |"
        )
    lines += ["", "| Target | Measured | Met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if met else 'NO'} |" for name, value, met in checks]
    return "\n".join(lines) + "\n"


async def simulate_all(population: int, days: int, seed: int) -> list[dict[str, Any]]:
    """Every scenario under every policy: the summary rows."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="journeys-bench-offers-") as scratch:
        for scenario in SCENARIOS:
            for policy in POLICIES:
                run = await simulate(scenario, policy, population, days, seed, Path(scratch))
                print(
                    f"{scenario.name:<20} {policy:<9} claims/offer (last 30 d) "
                    f"{run.rate(days - 29, days):.4f} in {run.seconds:.0f}s",
                    file=sys.stderr,
                )
                runs.append(run)
    return summarise(runs, days)


async def main_async(population: int, days: int, seed: int) -> int:
    rows = await simulate_all(population, days, seed)
    checks = targets(rows)
    meta = f"{population} users, {days} simulated days, seed {seed}, SQLite"
    report = markdown(rows, checks, meta)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "offers-latest.md").write_text(report)
    (RESULTS / "offers-latest.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "scenarios": [asdict(scenario) for scenario in SCENARIOS],
                "rows": rows,
                "targets": [{"target": n, "measured": v, "met": m} for n, v, m in checks],
            },
            indent=2,
        )
    )
    print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.users, args.days, args.seed))


if __name__ == "__main__":
    sys.exit(main())
