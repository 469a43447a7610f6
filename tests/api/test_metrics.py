"""Live profile metrics and segments: correct on the very next read after any event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api.test_events import play, profile, stamp, track


def at(days: float = 0, hours: float = 0) -> str:
    return stamp(datetime.now(UTC) - timedelta(days=days, hours=hours))


def test_counters_follow_the_definitions(http: httpx.Client, key: str) -> None:
    track(
        http,
        key,
        [
            play("m", points=100, metadata={"won": True}, occurredAt=at(days=1)),
            play("m", points=-40, metadata={"won": False}, occurredAt=at(days=2)),
            play("m", points=10, metadata={"won": "true"}, occurredAt=at(days=10)),  # not `true`
            play("m", points=7, occurredAt=at(days=40)),
            {
                "externalId": "m",
                "category": "CAMPAIGN",
                "eventType": "join",
                "metadata": {"campaignId": "c1"},
                "occurredAt": at(days=3),
            },
            {
                "externalId": "m",
                "category": "CAMPAIGN",
                "eventType": "join",
                "metadata": {"campaignId": "c1"},
                "occurredAt": at(days=4),
            },
            {
                "externalId": "m",
                "category": "CAMPAIGN",
                "eventType": "join",
                "metadata": {"campaignId": 2},
                "occurredAt": at(days=50),
            },
            {
                "externalId": "m",
                "category": "POINTS",
                "eventType": "bonus",
                "points": 500,
                "occurredAt": at(days=20),
            },
            {
                "externalId": "m",
                "category": "CUSTOM",
                "eventType": "login",
                "occurredAt": at(hours=1),
            },
        ],
    )

    data = profile(http, key, "m")

    assert data["totalEvents"] == 9
    assert data["totalPlays"] == 4
    assert data["plays7d"] == 2
    assert data["plays30d"] == 3
    assert data["pointsEarned7d"] == 100, "spending (negative points) never counts as earned"
    assert data["pointsEarned30d"] == 610
    assert data["campaignsJoined"] == 2, "distinct campaign ids, all time"
    assert data["winRate"] == 0.25


def test_win_rate_is_rounded_to_four_decimals(http: httpx.Client, key: str) -> None:
    track(http, key, [play("wr", metadata={"won": i == 0}) for i in range(3)])

    assert profile(http, key, "wr")["winRate"] == 0.3333


def test_windows_count_exactly_24_hour_multiples(http: httpx.Client, key: str) -> None:
    offsets = [
        (6, 23),
        (7, 1),
        (29, 23),
        (30, 1),  # either side of both window edges
        (6, 0),
        (7, 12),
        (29, 0),
        (30, 12),
        (0, 0),
        (3, 5),
        (45, 0),
    ]
    track(
        http,
        key,
        [
            play("edges", points=10 + n, occurredAt=at(days=d, hours=h))
            for n, (d, h) in enumerate(offsets)
        ],
    )

    data = profile(http, key, "edges")

    in_7 = [n for n, (d, h) in enumerate(offsets) if d * 24 + h < 7 * 24]
    in_30 = [n for n, (d, h) in enumerate(offsets) if d * 24 + h < 30 * 24]
    assert data["plays7d"] == len(in_7)
    assert data["plays30d"] == len(in_30)
    assert data["pointsEarned7d"] == sum(10 + n for n in in_7)
    assert data["pointsEarned30d"] == sum(10 + n for n in in_30)


def test_a_user_whose_last_event_is_20_days_old_is_at_risk(http: httpx.Client, key: str) -> None:
    track(http, key, [play("risk", occurredAt=at(days=d)) for d in (60, 45, 30, 25, 20)])

    data = profile(http, key, "risk")

    assert data["lifecycleStage"] == "at_risk"
    assert data["churnRiskScore"] > 20


def test_a_user_whose_last_event_is_40_days_old_is_churned(http: httpx.Client, key: str) -> None:
    track(http, key, [play("gone", occurredAt=at(days=d)) for d in (50, 45, 40)])

    data = profile(http, key, "gone")

    assert data["lifecycleStage"] == "churned"
    assert data["engagementScore"] == 0.0
    assert data["recommendations"][0]["name"] == "win_back_campaign"


def test_a_daily_player_silent_for_two_weeks_scores_churn_risk_60_or_more(
    http: httpx.Client, key: str
) -> None:
    track(http, key, [play("daily", occurredAt=at(days=d)) for d in range(14, 45)])

    data = profile(http, key, "daily")

    assert data["churnRiskScore"] >= 60
    assert data["lifecycleStage"] == "at_risk"


def test_a_heavy_recent_player_is_a_power_user(http: httpx.Client, key: str) -> None:
    items: list[dict[str, Any]] = [
        play("power", points=100, occurredAt=at(days=n % 6, hours=1)) for n in range(35)
    ]
    items += [
        {
            "externalId": "power",
            "category": "CAMPAIGN",
            "eventType": "join",
            "metadata": {"campaignId": f"c{n}"},
            "occurredAt": at(hours=2),
        }
        for n in range(3)
    ]
    track(http, key, items)

    data = profile(http, key, "power")

    assert data["plays30d"] == 35
    assert data["engagementScore"] >= 70
    assert data["lifecycleStage"] == "power_user"
    assert data["engagementTier"] == "power_user"


def test_a_new_user_stays_new_up_to_three_events(http: httpx.Client, key: str) -> None:
    track(http, key, [play("newbie") for _ in range(3)])
    assert profile(http, key, "newbie")["lifecycleStage"] == "new"

    track(http, key, [play("newbie")])

    assert profile(http, key, "newbie")["lifecycleStage"] == "active"


def test_tier_follows_plays_in_30_days(http: httpx.Client, key: str) -> None:
    track(http, key, [play("whale", occurredAt=at(hours=n % 48)) for n in range(51)])

    data = profile(http, key, "whale")

    assert (data["plays30d"], data["engagementTier"]) == (51, "whale")


def test_recommendations_are_ranked_sentences(http: httpx.Client, key: str) -> None:
    track(http, key, [play("advice", occurredAt=at(days=18))])

    advice = profile(http, key, "advice")["recommendations"]

    assert 1 <= len(advice) <= 3
    assert [item["priority"] for item in advice] == list(range(1, len(advice) + 1))
    for item in advice:
        assert list(item) == ["priority", "name", "reason"]
        assert item["reason"].endswith(".")
    assert "18 days ago" in advice[0]["reason"]


def test_post_users_shows_the_live_metrics_too(http: httpx.Client, key: str) -> None:
    track(http, key, [play("both", points=5)])

    data = httpx.post(
        f"{http.base_url}/v1/user-journeys/users",
        headers={"X-API-Key": key},
        json={"externalId": "both", "displayName": "B"},
    ).json()["data"]

    assert (data["totalEvents"], data["totalPlays"], data["pointsEarned7d"]) == (1, 1, 5)
