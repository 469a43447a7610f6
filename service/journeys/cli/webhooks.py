"""`journeys webhooks list|create|delete|deliveries`: an operator managing a partner's
webhooks as the partner would with a secret key. `create` prints the signing secret alone on
the last line of stdout, once."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeVar

from journeys.cli._common import Commands, add_environment, environment, error, run
from journeys.config import Settings
from journeys.domain import DeliveryRecord, WebhookEvent, WebhookRecord
from journeys.errors import JourneysError
from journeys.storage.database import Database
from journeys.usecases.auth import Operator
from journeys.usecases.webhooks import NewWebhook, Webhooks

T = TypeVar("T")


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("webhooks", help="a partner's webhooks and their deliveries")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the partner's webhooks")
    _add_partner(listing)
    listing.set_defaults(command=_list)
    create = actions.add_parser("create", help="register an endpoint (prints its secret)")
    _add_partner(create)
    create.add_argument("--url", required=True, help="a public http(s) address")
    create.add_argument(
        "--event",
        dest="events",
        action="append",
        required=True,
        choices=[event.value for event in WebhookEvent],
        help="an event type to receive (repeat for several)",
    )
    create.add_argument("--description", default="", help="free text, at most 500 characters")
    create.set_defaults(command=_create)
    delete = actions.add_parser("delete", help="stop all deliveries to a webhook")
    _add_partner(delete)
    delete.add_argument("webhook_id", metavar="WEBHOOK_ID")
    delete.set_defaults(command=_delete)
    deliveries = actions.add_parser("deliveries", help="a webhook's latest messages")
    _add_partner(deliveries)
    deliveries.add_argument("webhook_id", metavar="WEBHOOK_ID")
    deliveries.add_argument("--limit", type=int, default=None, help="1-100 (default 20)")
    deliveries.set_defaults(command=_deliveries)


def _add_partner(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partner", required=True, help="partner name")
    add_environment(parser, required=True)


def _call(
    settings: Settings,
    action: Callable[[Webhooks], Awaitable[T]],
) -> T | None:
    async def call() -> T:
        async with Database(settings.database_url) as database:
            return await action(Webhooks(database, allow_private=settings.webhook_allow_private))

    try:
        return run(call())
    except JourneysError as problem:
        error(problem.message)
        return None


def _operator(args: argparse.Namespace) -> Operator:
    return Operator(args.partner, environment(args.environment))


def _line(webhook: WebhookRecord) -> str:
    events = ",".join(webhook.events)
    return f"{webhook.id}  {webhook.status:<8}  {events}  {webhook.url}"


def _list(settings: Settings, args: argparse.Namespace) -> int:
    found = _call(settings, lambda webhooks: webhooks.list_webhooks(_operator(args)))
    if found is None:
        return 1
    for webhook in found:
        print(_line(webhook))
    return 0


def _create(settings: Settings, args: argparse.Namespace) -> int:
    new = NewWebhook(args.url, args.events, args.description)
    created = _call(settings, lambda webhooks: webhooks.create_webhook(_operator(args), new))
    if created is None:
        return 1
    print(_line(created))
    print("Its signing secret (shown only once):")
    print(created.secret)
    return 0


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    deleted = _call(
        settings, lambda webhooks: webhooks.delete_webhook(_operator(args), args.webhook_id)
    )
    if deleted is None:
        return 1
    print(_line(deleted))
    return 0


def _deliveries(settings: Settings, args: argparse.Namespace) -> int:
    found = _call(
        settings,
        lambda webhooks: webhooks.deliveries(_operator(args), args.webhook_id, args.limit),
    )
    if found is None:
        return 1
    for delivery in found:
        print(_delivery_line(delivery))
    return 0


def _delivery_line(delivery: DeliveryRecord) -> str:
    last = "-" if delivery.last_response_status is None else str(delivery.last_response_status)
    at = (
        "-"
        if delivery.next_attempt_at is None
        else f"{delivery.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}"
    )
    return (
        f"{delivery.message_id}  {delivery.event.value:<18}  {delivery.status.value:<9}  "
        f"attempts={delivery.attempts}  last={last}  next={at}"
    )
