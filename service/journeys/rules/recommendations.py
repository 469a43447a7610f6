"""Next-best actions for one user, derived from their activity and segments.

The rules below are checked in order; every matching rule becomes a recommendation, the first
match gets priority 1, and at most three are returned so a marketing team gets a short,
ranked list rather than a wall of suggestions. "Lapsing" means stage `churned` or `at_risk`:
a lapsing user only gets the message that tries to bring them back, never growth offers.

| # | Condition                                                      | Name                | Reason (example)                                                                                                  |
|---|----------------------------------------------------------------|---------------------|-------------------------------------------------------------------------------------------------------------------|
| 1 | stage is `churned`                                             | `win_back_campaign` | Last seen 40 days ago with a churn risk of 91; a high-value free spin may bring them back.                        |
| 2 | stage is `at_risk`, or churn risk >= 60 and not `churned`      | `retention_offer`   | Last seen 14 days ago with a churn risk of 79; a time-limited bonus may stop them from drifting away.             |
| 3 | stage is `new`                                                 | `onboarding_nudge`  | Joined 2 days ago and has not played yet; a guided first game can start the habit.                                |
| 4 | tier or stage is `power_user`, or tier is `whale`; not lapsing | `vip_treatment`     | Played 60 games in the last 30 days (whale tier) with an engagement score of 75.0; VIP perks reward that loyalty. |
| 5 | plays in 30 days >= 5, no campaign joined; not lapsing         | `campaign_invite`   | Played 8 games in the last 30 days but has not joined a campaign; an invitation gives that play a goal.           |
| 6 | stage is `active` and no plays in 7 days                       | `daily_engagement`  | No games played in the last 7 days although last seen 3 days ago; a daily reward can rebuild the routine.         |

When the user has played, rule 3 reads "Joined 2 days ago and has played 1 game so far; a
welcome reward can turn that into a habit."
"""  # noqa: E501 - the rule table is copied verbatim into the README

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from journeys.rules.segments import (
    Activity,
    EngagementTier,
    LifecycleStage,
    Segments,
    days_since,
)

MAX_RECOMMENDATIONS = 3
RETENTION_MIN_CHURN_RISK = 60
CAMPAIGN_INVITE_MIN_PLAYS_30D = 5

_LAPSING = frozenset({LifecycleStage.CHURNED, LifecycleStage.AT_RISK})
_VIP_TIERS = frozenset({EngagementTier.POWER_USER, EngagementTier.WHALE})


@dataclass(frozen=True)
class Recommendation:
    priority: int
    name: str
    reason: str


@dataclass(frozen=True)
class Facts:
    """What every rule may look at; day counts are computed once so rules stay one-liners."""

    activity: Activity
    segments: Segments
    days_since_first_seen: int
    days_since_last_seen: int

    @property
    def lapsing(self) -> bool:
        return self.segments.stage in _LAPSING


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[Facts], bool]
    reason: Callable[[Facts], str]


def recommend(activity: Activity, segments: Segments, as_of: datetime) -> list[Recommendation]:
    facts = Facts(
        activity=activity,
        segments=segments,
        days_since_first_seen=days_since(activity.first_seen_at, as_of),
        days_since_last_seen=days_since(activity.last_seen_at, as_of),
    )
    matched = [rule for rule in RULES if rule.applies(facts)][:MAX_RECOMMENDATIONS]
    return [
        Recommendation(priority=priority, name=rule.name, reason=rule.reason(facts))
        for priority, rule in enumerate(matched, start=1)
    ]


def _is_churned(facts: Facts) -> bool:
    return facts.segments.stage == LifecycleStage.CHURNED


def _win_back_reason(facts: Facts) -> str:
    return (
        f"Last seen {_ago(facts.days_since_last_seen)} with a churn risk of "
        f"{facts.segments.churn_risk_score}; a high-value free spin may bring them back."
    )


def _needs_retention(facts: Facts) -> bool:
    # A churned user already gets the stronger win-back message; two "come back" offers at once
    # would compete with each other.
    if facts.segments.stage == LifecycleStage.CHURNED:
        return False
    return (
        facts.segments.stage == LifecycleStage.AT_RISK
        or facts.segments.churn_risk_score >= RETENTION_MIN_CHURN_RISK
    )


def _retention_reason(facts: Facts) -> str:
    return (
        f"Last seen {_ago(facts.days_since_last_seen)} with a churn risk of "
        f"{facts.segments.churn_risk_score}; a time-limited bonus may stop them from drifting "
        "away."
    )


def _is_new(facts: Facts) -> bool:
    return facts.segments.stage == LifecycleStage.NEW


def _onboarding_reason(facts: Facts) -> str:
    joined = f"Joined {_ago(facts.days_since_first_seen)}"
    plays = max(0, facts.activity.total_plays)
    if plays == 0:
        return f"{joined} and has not played yet; a guided first game can start the habit."
    return (
        f"{joined} and has played {_count(plays, 'game')} so far; a welcome reward can turn "
        "that into a habit."
    )


def _deserves_vip(facts: Facts) -> bool:
    top_player = (
        facts.segments.tier in _VIP_TIERS or facts.segments.stage == LifecycleStage.POWER_USER
    )
    return top_player and not facts.lapsing


def _vip_reason(facts: Facts) -> str:
    tier = facts.segments.tier.value.replace("_", " ")
    return (
        f"Played {_count(facts.activity.plays_30d, 'game')} in the last 30 days ({tier} tier) "
        f"with an engagement score of {facts.segments.engagement_score:.1f}; VIP perks reward "
        "that loyalty."
    )


def _plays_without_campaign(facts: Facts) -> bool:
    return (
        facts.activity.plays_30d >= CAMPAIGN_INVITE_MIN_PLAYS_30D
        and facts.activity.campaigns_joined <= 0
        and not facts.lapsing
    )


def _campaign_invite_reason(facts: Facts) -> str:
    return (
        f"Played {_count(facts.activity.plays_30d, 'game')} in the last 30 days but has not "
        "joined a campaign; an invitation gives that play a goal."
    )


def _idle_this_week(facts: Facts) -> bool:
    return facts.segments.stage == LifecycleStage.ACTIVE and facts.activity.plays_7d <= 0


def _daily_engagement_reason(facts: Facts) -> str:
    return (
        "No games played in the last 7 days although last seen "
        f"{_ago(facts.days_since_last_seen)}; a daily reward can rebuild the routine."
    )


def _ago(days: int) -> str:
    if days == 0:
        return "today"
    return f"{_count(days, 'day')} ago"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


RULES: tuple[Rule, ...] = (
    Rule("win_back_campaign", _is_churned, _win_back_reason),
    Rule("retention_offer", _needs_retention, _retention_reason),
    Rule("onboarding_nudge", _is_new, _onboarding_reason),
    Rule("vip_treatment", _deserves_vip, _vip_reason),
    Rule("campaign_invite", _plays_without_campaign, _campaign_invite_reason),
    Rule("daily_engagement", _idle_this_week, _daily_engagement_reason),
)
