"""Segmentation and recommendation rules: pure functions of an activity summary and an instant."""

from journeys.rules.learning import (
    APPRENTICE_OUTCOMES,
    EXPLORATION_FLOOR,
    Context,
    Outcome,
    Outcomes,
    Sampler,
)
from journeys.rules.offers import (
    MAX_ACTIVE_OFFERS,
    CatalogueEntry,
    OfferHistory,
    PlannedOffer,
    plan_offers,
    qualifies,
)
from journeys.rules.recommendations import (
    MAX_RECOMMENDATIONS,
    RULES,
    Recommendation,
    Rule,
    recommend,
)
from journeys.rules.segments import (
    Activity,
    EngagementTier,
    LifecycleStage,
    Segments,
    churn_risk_score,
    classify,
    days_since,
    engagement_score,
    engagement_tier,
    lifecycle_stage,
    win_rate,
)

__all__ = [
    "APPRENTICE_OUTCOMES",
    "EXPLORATION_FLOOR",
    "MAX_ACTIVE_OFFERS",
    "MAX_RECOMMENDATIONS",
    "RULES",
    "Activity",
    "CatalogueEntry",
    "Context",
    "EngagementTier",
    "LifecycleStage",
    "OfferHistory",
    "Outcome",
    "Outcomes",
    "PlannedOffer",
    "Recommendation",
    "Rule",
    "Sampler",
    "Segments",
    "churn_risk_score",
    "classify",
    "days_since",
    "engagement_score",
    "engagement_tier",
    "lifecycle_stage",
    "plan_offers",
    "qualifies",
    "recommend",
    "win_rate",
]
