"""Domain values to and from protobuf messages."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

from gamifyhost.userjourneys.v1 import event_pb2, offer_pb2, user_journeys_service_pb2, user_pb2
from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from journeys.domain import (
    EventInput,
    EventRecord,
    JsonObject,
    OfferRecord,
    StageTransitionView,
    UserChanges,
)
from journeys.errors import InvalidArgument
from journeys.usecases.profiles import UserView

_OptionalField = Literal["display_name", "email", "phone", "country", "device", "source"]


def user_changes(request: user_journeys_service_pb2.TrackUserRequest) -> UserChanges:
    def sent(name: _OptionalField) -> str | None:
        value: str = getattr(request, name)
        return value if request.HasField(name) else None

    return UserChanges(
        external_id=request.external_id,
        display_name=sent("display_name"),
        email=sent("email"),
        phone=sent("phone"),
        country=sent("country"),
        device=sent("device"),
        source=sent("source"),
        tags=struct_to_dict(request.tags, "tags") if request.HasField("tags") else None,
        metadata=(
            struct_to_dict(request.metadata, "metadata") if request.HasField("metadata") else None
        ),
    )


def fill_profile(
    message: user_pb2.User | user_journeys_service_pb2.GetUserResponse, view: UserView
) -> None:
    """Fills the profile fields that `User` and the flat `GetUserResponse` share."""
    record, activity, segments = view.record, view.activity, view.segments
    message.id = record.id
    message.partner_id = record.partner_id
    message.external_id = record.external_id
    message.environment = record.environment.value
    message.display_name = record.display_name
    message.email = record.email
    message.phone = record.phone
    message.country = record.country
    message.device = record.device
    message.source = record.source
    message.first_seen_at.CopyFrom(timestamp(record.first_seen_at))
    message.last_seen_at.CopyFrom(timestamp(record.last_seen_at))
    message.lifecycle_stage = segments.stage.value
    message.engagement_tier = segments.tier.value
    message.engagement_score = segments.engagement_score
    message.churn_risk_score = segments.churn_risk_score
    message.total_plays = _int32(activity.total_plays)
    message.plays_7d = _int32(activity.plays_7d)
    message.plays_30d = _int32(activity.plays_30d)
    message.points_earned_7d = _int32(activity.points_earned_7d)
    message.points_earned_30d = _int32(activity.points_earned_30d)
    message.campaigns_joined = _int32(activity.campaigns_joined)
    message.win_rate = view.win_rate
    message.total_events = _int32(activity.total_events)
    message.tags.update(record.tags)
    set_struct(message.metadata, record.metadata)


#: Counters are int32 on the wire; a sum beyond that saturates instead of wrapping.
INT32_MAX = 2**31 - 1


def _int32(value: int) -> int:
    return min(value, INT32_MAX)


def user(view: UserView) -> user_pb2.User:
    message = user_pb2.User()
    fill_profile(message, view)
    return message


def user_detail(view: UserView) -> user_journeys_service_pb2.GetUserResponse:
    message = user_journeys_service_pb2.GetUserResponse()
    fill_profile(message, view)
    message.recommendations.extend(
        user_pb2.Recommendation(priority=item.priority, name=item.name, reason=item.reason)
        for item in view.recommendations
    )
    message.journey.extend(stage_transition(item) for item in view.journey)
    return message


def stage_transition(transition: StageTransitionView) -> user_pb2.StageTransition:
    return user_pb2.StageTransition(
        from_stage=transition.from_stage,
        to_stage=transition.to_stage,
        at=timestamp(transition.at),
    )


def event_input(message: event_pb2.EventInput) -> EventInput:
    return EventInput(
        external_id=message.external_id,
        category=message.category,
        event_type=message.event_type,
        points=message.points,
        occurred_at=message.occurred_at,
        message_id=message.message_id,
        metadata=(
            struct_to_dict(message.metadata, "metadata") if message.HasField("metadata") else None
        ),
    )


def batch_items(body: httpbody_pb2.HttpBody) -> list[JsonObject]:
    """The items of a raw POST /track body, each checked later on its own. Only a body that is
    no JSON object, holds a key twice, or whose `events` is no array of objects fails the
    whole request."""
    if not body.data.strip():
        return []  # an empty body reads as `{}`, as for every other call
    try:
        document = json.loads(body.data, object_pairs_hook=_unique_keys, parse_constant=_no_nan)
    except ValueError:  # not JSON, or not UTF-8
        raise InvalidArgument from None
    if not isinstance(document, dict):
        raise InvalidArgument
    events = document.get("events")
    if events is None:
        return []
    if not isinstance(events, list) or not all(isinstance(item, dict) for item in events):
        raise InvalidArgument
    return events


def _unique_keys(pairs: list[tuple[str, Any]]) -> JsonObject:
    """An object, refusing a key it holds twice: two parsers could read such a body two ways."""
    result: JsonObject = {}
    for key, value in pairs:
        if key in result:
            raise InvalidArgument.field(key, f"duplicate key {json.dumps(key)}")
        result[key] = value
    return result


def _no_nan(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def event(record: EventRecord) -> event_pb2.Event:
    message = event_pb2.Event(
        id=record.id,
        partner_id=record.partner_id,
        external_id=record.external_id,
        environment=record.environment.value,
        category=record.category,
        event_type=record.event_type,
        points=record.points,
        occurred_at=timestamp(record.occurred_at),
        message_id=record.message_id,
    )
    set_struct(message.metadata, record.metadata)
    return message


def offer(record: OfferRecord) -> offer_pb2.Offer:
    message = offer_pb2.Offer(
        id=record.id,
        external_id=record.external_id,
        offer_type=record.offer_type,
        game_type=record.game_type,
        title=record.title,
        description=record.description,
        points_value=record.points_value,
        status=record.status,
        expires_at=timestamp(record.expires_at),
    )
    if record.claimed_at is not None:
        message.claimed_at.CopyFrom(timestamp(record.claimed_at))
    set_struct(message.metadata, record.metadata)
    return message


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """Whole seconds, the API's resolution. From the epoch offset directly: protobuf's
    `FromDatetime` costs several times more, on every time of every answer."""
    return timestamp_pb2.Timestamp(seconds=math.floor(value.timestamp()))


def timestamp_or_null(value: datetime | None) -> struct_pb2.Value:
    """A time the REST API prints as a timestamp string, or as `null` when there is none."""
    if value is None:
        return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    return struct_pb2.Value(string_value=timestamp(value).ToJsonString())


def struct_to_dict(message: struct_pb2.Struct, field: str) -> JsonObject:
    """The Struct as plain JSON data. A gRPC client can put NaN or infinity in a Struct; JSON
    has no such numbers, so they are the client's error."""
    try:
        result: Any = json_format.MessageToDict(message)
    except ValueError:
        raise InvalidArgument.field(field, f"{field} numbers must be finite") from None
    return dict(result)


def set_struct(message: struct_pb2.Struct, value: JsonObject) -> None:
    # Presence must be set even for {}: the gateway omits an unset Struct instead of
    # printing the documented empty object.
    message.SetInParent()
    message.update(value)
