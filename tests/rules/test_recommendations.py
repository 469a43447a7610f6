from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeys.rules import (
    MAX_RECOMMENDATIONS,
    RULES,
    Activity,
    EngagementTier,
    LifecycleStage,
    Recommendation,
    Segments,
    classify,
    recommend,
)
from journeys.rules import recommendations as recommendations_module

from tests.rules.activities import AS_OF, BASE, ago

Stage = LifecycleStage
Tier = EngagementTier


def segments(
    stage: LifecycleStage,
    tier: EngagementTier = Tier.CASUAL,
    score: float = 50.0,
    risk: int = 0,
) -> Segments:
    return Segments(stage=stage, tier=tier, engagement_score=score, churn_risk_score=risk)


def names(activity: Activity, user_segments: Segments) -> list[str]:
    return [item.name for item in recommend(activity, user_segments, AS_OF)]


@pytest.mark.parametrize(
    ("activity", "user_segments", "expected"),
    [
        pytest.param(BASE, segments(Stage.ACTIVE), [], id="nothing to do"),
        # 1. win_back_campaign
        pytest.param(
            replace(BASE, last_seen_at=ago(40)),
            segments(Stage.CHURNED, risk=91),
            ["win_back_campaign"],
            id="churned",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(40), plays_30d=60, plays_7d=0, total_events=2),
            segments(Stage.CHURNED, Tier.WHALE, risk=95),
            ["win_back_campaign"],
            id="churned gets only the win-back, whatever else is true",
        ),
        # 2. retention_offer
        pytest.param(
            replace(BASE, last_seen_at=ago(14)),
            segments(Stage.AT_RISK, risk=79),
            ["retention_offer"],
            id="at_risk",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(14)),
            segments(Stage.AT_RISK, risk=10),
            ["retention_offer"],
            id="at_risk with low risk",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(6)),
            segments(Stage.ACTIVE, risk=60),
            ["retention_offer"],
            id="risk 60",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(6)),
            segments(Stage.ACTIVE, risk=59),
            [],
            id="risk 59",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(20), plays_30d=60, campaigns_joined=0),
            segments(Stage.AT_RISK, Tier.WHALE, risk=84),
            ["retention_offer"],
            id="at_risk whale gets no growth offers",
        ),
        # 3. onboarding_nudge
        pytest.param(
            replace(BASE, first_seen_at=ago(2), total_events=1, total_plays=0),
            segments(Stage.NEW),
            ["onboarding_nudge"],
            id="new",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(2), total_events=1, total_plays=0),
            segments(Stage.ACTIVE),
            [],
            id="not new",
        ),
        # 4. vip_treatment
        pytest.param(
            replace(BASE, plays_30d=60),
            segments(Stage.ACTIVE, Tier.WHALE),
            ["vip_treatment", "campaign_invite"],
            id="whale tier",
        ),
        pytest.param(
            replace(BASE, plays_30d=15, campaigns_joined=1),
            segments(Stage.ENGAGED, Tier.POWER_USER),
            ["vip_treatment"],
            id="power_user tier",
        ),
        pytest.param(
            replace(BASE, plays_30d=14, campaigns_joined=1),
            segments(Stage.POWER_USER, Tier.REGULAR),
            ["vip_treatment"],
            id="power_user stage",
        ),
        pytest.param(
            replace(BASE, plays_30d=14, campaigns_joined=1),
            segments(Stage.ENGAGED, Tier.REGULAR),
            [],
            id="regular tier",
        ),
        # 5. campaign_invite
        pytest.param(
            replace(BASE, plays_30d=5),
            segments(Stage.ACTIVE, Tier.REGULAR),
            ["campaign_invite"],
            id="5 plays, no campaign",
        ),
        pytest.param(
            replace(BASE, plays_30d=4),
            segments(Stage.ACTIVE),
            [],
            id="4 plays",
        ),
        pytest.param(
            replace(BASE, plays_30d=5, campaigns_joined=1),
            segments(Stage.ACTIVE, Tier.REGULAR),
            [],
            id="already in a campaign",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(15), plays_30d=5),
            segments(Stage.AT_RISK, Tier.REGULAR, risk=80),
            ["retention_offer"],
            id="no invite while lapsing",
        ),
        # 6. daily_engagement
        pytest.param(
            replace(BASE, last_seen_at=ago(3), plays_7d=0),
            segments(Stage.ACTIVE),
            ["daily_engagement"],
            id="active, no plays this week",
        ),
        pytest.param(
            replace(BASE, plays_7d=1),
            segments(Stage.ACTIVE),
            [],
            id="active, played this week",
        ),
        pytest.param(
            replace(BASE, plays_7d=0, plays_30d=10, campaigns_joined=1),
            segments(Stage.ENGAGED, Tier.REGULAR),
            [],
            id="engaged, no plays this week",
        ),
        # Ordering and the cap of three.
        pytest.param(
            replace(BASE, last_seen_at=ago(5), plays_7d=0, plays_30d=20, campaigns_joined=0),
            segments(Stage.ACTIVE, Tier.POWER_USER, risk=62),
            ["retention_offer", "vip_treatment", "campaign_invite"],
            id="four rules match, the lowest priority is dropped",
        ),
    ],
)
def test_rule_table(activity: Activity, user_segments: Segments, expected: list[str]) -> None:
    assert names(activity, user_segments) == expected


@pytest.mark.parametrize(
    ("activity", "user_segments", "expected"),
    [
        pytest.param(
            replace(BASE, last_seen_at=ago(40)),
            segments(Stage.CHURNED, risk=91),
            "Last seen 40 days ago with a churn risk of 91; a high-value free spin may bring them "
            "back.",
            id="win_back_campaign",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(14)),
            segments(Stage.AT_RISK, risk=79),
            "Last seen 14 days ago with a churn risk of 79; a time-limited bonus may stop them "
            "from drifting away.",
            id="retention_offer",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(1)),
            segments(Stage.ACTIVE, risk=60),
            "Last seen 1 day ago with a churn risk of 60; a time-limited bonus may stop them "
            "from drifting away.",
            id="retention_offer one day",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(2), total_plays=0),
            segments(Stage.NEW),
            "Joined 2 days ago and has not played yet; a guided first game can start the habit.",
            id="onboarding_nudge without plays",
        ),
        pytest.param(
            replace(BASE, first_seen_at=AS_OF, total_plays=1),
            segments(Stage.NEW),
            "Joined today and has played 1 game so far; a welcome reward can turn that into a "
            "habit.",
            id="onboarding_nudge with one play",
        ),
        pytest.param(
            replace(BASE, first_seen_at=ago(1), total_plays=3),
            segments(Stage.NEW),
            "Joined 1 day ago and has played 3 games so far; a welcome reward can turn that into "
            "a habit.",
            id="onboarding_nudge with plays",
        ),
        pytest.param(
            replace(BASE, plays_30d=60, campaigns_joined=2),
            segments(Stage.POWER_USER, Tier.WHALE, score=75.0),
            "Played 60 games in the last 30 days (whale tier) with an engagement score of 75.0; "
            "VIP perks reward that loyalty.",
            id="vip_treatment",
        ),
        pytest.param(
            replace(BASE, plays_30d=15, campaigns_joined=2),
            segments(Stage.ENGAGED, Tier.POWER_USER, score=62.5),
            "Played 15 games in the last 30 days (power user tier) with an engagement score of "
            "62.5; VIP perks reward that loyalty.",
            id="vip_treatment power user tier",
        ),
        pytest.param(
            replace(BASE, plays_30d=8),
            segments(Stage.ACTIVE, Tier.REGULAR),
            "Played 8 games in the last 30 days but has not joined a campaign; an invitation "
            "gives that play a goal.",
            id="campaign_invite",
        ),
        pytest.param(
            replace(BASE, last_seen_at=ago(3), plays_7d=0),
            segments(Stage.ACTIVE),
            "No games played in the last 7 days although last seen 3 days ago; a daily reward "
            "can rebuild the routine.",
            id="daily_engagement",
        ),
        pytest.param(
            replace(BASE, plays_7d=0),
            segments(Stage.ACTIVE),
            "No games played in the last 7 days although last seen today; a daily reward can "
            "rebuild the routine.",
            id="daily_engagement seen today",
        ),
    ],
)
def test_reasons_name_the_figures_that_triggered_them(
    activity: Activity, user_segments: Segments, expected: str
) -> None:
    (only,) = recommend(activity, user_segments, AS_OF)
    assert only.reason == expected


def test_priorities_follow_the_rule_order() -> None:
    activity = replace(BASE, last_seen_at=ago(5), plays_7d=0, plays_30d=60, campaigns_joined=0)
    result = recommend(activity, segments(Stage.ACTIVE, Tier.WHALE, risk=70), AS_OF)

    assert [(item.priority, item.name) for item in result] == [
        (1, "retention_offer"),
        (2, "vip_treatment"),
        (3, "campaign_invite"),
    ]


def test_rule_names_are_distinct_snake_case_and_documented() -> None:
    rule_names = [rule.name for rule in RULES]
    doc = recommendations_module.__doc__ or ""

    assert len(set(rule_names)) == len(rule_names)
    for name in rule_names:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name)
        assert f"`{name}`" in doc


# --- properties --------------------------------------------------------------------------------

RULE_NAMES = frozenset(rule.name for rule in RULES)
instant = st.datetimes(timezones=st.just(UTC))
count = st.integers(min_value=0, max_value=10**6)
activities = st.builds(
    Activity,
    first_seen_at=st.none() | instant,
    last_seen_at=st.none() | instant,
    total_events=count,
    total_plays=count,
    plays_7d=count,
    plays_30d=count,
    points_earned_7d=count,
    points_earned_30d=count,
    campaigns_joined=count,
    active_days=count,
)
any_segments = st.builds(
    Segments,
    stage=st.sampled_from(LifecycleStage),
    tier=st.sampled_from(EngagementTier),
    engagement_score=st.floats(min_value=0, max_value=100),
    churn_risk_score=st.integers(min_value=0, max_value=100),
)


def assert_well_formed(result: list[Recommendation]) -> None:
    assert 0 <= len(result) <= MAX_RECOMMENDATIONS == 3
    assert [item.priority for item in result] == list(range(1, len(result) + 1))
    assert len({item.name for item in result}) == len(result)
    assert {item.name for item in result} <= RULE_NAMES
    for item in result:
        assert item.reason[0].isupper()
        assert item.reason.endswith(".")


@given(activity=activities, as_of=instant)
def test_classified_users_get_a_short_ranked_coherent_list(
    activity: Activity, as_of: datetime
) -> None:
    user_segments = classify(activity, as_of)
    result = recommend(activity, user_segments, as_of)
    result_names = [item.name for item in result]

    assert_well_formed(result)
    if user_segments.stage is Stage.CHURNED:
        assert result_names == ["win_back_campaign"]
    if user_segments.stage is Stage.AT_RISK:
        assert result_names == ["retention_offer"]
    if "onboarding_nudge" in result_names:
        assert user_segments.stage is Stage.NEW


@given(activity=activities, user_segments=any_segments, as_of=instant)
def test_any_segments_give_a_well_formed_list(
    activity: Activity, user_segments: Segments, as_of: datetime
) -> None:
    assert_well_formed(recommend(activity, user_segments, as_of))
