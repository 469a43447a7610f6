"""The WebhooksService servicer: a tenant's webhook endpoints and their delivery log, for a
secret key."""

from __future__ import annotations

import grpc
from gamifyhost.userjourneys.v1 import webhooks_service_pb2 as pb
from gamifyhost.userjourneys.v1 import webhooks_service_pb2_grpc as pb_grpc
from google.protobuf import struct_pb2

from journeys.domain import DeliveryRecord, WebhookRecord
from journeys.transport import convert
from journeys.transport.rpc import unary
from journeys.usecases.auth import Caller
from journeys.usecases.webhooks import NewWebhook, Webhooks

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["WebhooksService"].full_name
_NULL = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)


class WebhooksServicer(pb_grpc.WebhooksServiceServicer):
    def __init__(self, webhooks: Webhooks) -> None:
        self._webhooks = webhooks

    @unary()
    async def CreateWebhook(
        self,
        request: pb.CreateWebhookRequest,
        context: grpc.aio.ServicerContext[pb.CreateWebhookRequest, pb.CreateWebhookResponse],
        caller: Caller,
    ) -> pb.CreateWebhookResponse:
        webhook = await self._webhooks.create_webhook(
            caller, NewWebhook(request.url, list(request.events), request.description)
        )
        return pb.CreateWebhookResponse(webhook=webhook_message(webhook, with_secret=True))

    @unary()
    async def ListWebhooks(
        self,
        request: pb.ListWebhooksRequest,
        context: grpc.aio.ServicerContext[pb.ListWebhooksRequest, pb.ListWebhooksResponse],
        caller: Caller,
    ) -> pb.ListWebhooksResponse:
        found = await self._webhooks.list_webhooks(caller)
        return pb.ListWebhooksResponse(webhooks=[webhook_message(item) for item in found])

    @unary()
    async def DeleteWebhook(
        self,
        request: pb.DeleteWebhookRequest,
        context: grpc.aio.ServicerContext[pb.DeleteWebhookRequest, pb.DeleteWebhookResponse],
        caller: Caller,
    ) -> pb.DeleteWebhookResponse:
        deleted = await self._webhooks.delete_webhook(caller, request.webhook_id)
        return pb.DeleteWebhookResponse(webhook=webhook_message(deleted))

    @unary()
    async def ListWebhookDeliveries(
        self,
        request: pb.ListWebhookDeliveriesRequest,
        context: grpc.aio.ServicerContext[
            pb.ListWebhookDeliveriesRequest, pb.ListWebhookDeliveriesResponse
        ],
        caller: Caller,
    ) -> pb.ListWebhookDeliveriesResponse:
        found = await self._webhooks.deliveries(
            caller, request.webhook_id, request.limit if request.HasField("limit") else None
        )
        return pb.ListWebhookDeliveriesResponse(deliveries=[_delivery(item) for item in found])


def webhook_message(webhook: WebhookRecord, *, with_secret: bool = False) -> pb.Webhook:
    message = pb.Webhook(
        id=webhook.id,
        url=webhook.url,
        events=[event.value for event in webhook.events],
        description=webhook.description,
        status=webhook.status.value,
        created_at=convert.timestamp(webhook.created_at),
    )
    if with_secret:
        message.secret = webhook.secret
    return message


def _delivery(delivery: DeliveryRecord) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        message_id=delivery.message_id,
        type=delivery.event.value,
        attempts=delivery.attempts,
        status=delivery.status.value,
        last_response_status=(
            _NULL
            if delivery.last_response_status is None
            else struct_pb2.Value(number_value=delivery.last_response_status)
        ),
        last_attempt_at=convert.timestamp_or_null(delivery.last_attempt_at),
        next_attempt_at=convert.timestamp_or_null(delivery.next_attempt_at),
    )
