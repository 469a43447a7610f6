"""A message's body: `{"type", "timestamp", "data"}`, the data printed exactly as the REST
API prints the same objects, rendered the same way on every attempt."""

from __future__ import annotations

import json

from gamifyhost.userjourneys.v1 import webhooks_service_pb2 as pb

from journeys.domain import Announcement, StageChange
from journeys.transport import convert
from journeys.transport.export_json import as_api_json, offer_json


def body(announcement: Announcement) -> bytes:
    subject = announcement.subject
    if isinstance(subject, StageChange):
        data = as_api_json(
            pb.UserStageChangedData(
                external_id=subject.external_id,
                from_stage=subject.from_stage,
                to_stage=subject.to_stage,
                at=convert.timestamp(subject.at),
                engagement_tier=subject.engagement_tier,
                engagement_score=subject.engagement_score,
                churn_risk_score=subject.churn_risk_score,
            )
        )
    else:
        data = {"offer": offer_json(convert.offer(subject))}
    document = {
        "type": announcement.event.value,
        "timestamp": convert.timestamp(announcement.occurred_at).ToJsonString(),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
