"""`journeys webhooks …`: an operator manages a partner's webhooks from the command line,
through the same use cases (and the same address rule) as the API."""

from __future__ import annotations

import os

from journeys.domain import Environment

from scripts.stack import journeys, migrate, new_key

PARTNER = ["--partner", "cli-hooks", "--environment", "test"]


def test_create_list_deliveries_and_delete(database_url: str) -> None:
    migrate(database_url)
    new_key(database_url, "cli-hooks", Environment.TEST)
    env = {**os.environ, "JOURNEYS_DATABASE_URL": database_url}
    allowed = {**env, "JOURNEYS_WEBHOOK_ALLOW_PRIVATE": "true"}
    url = "http://127.0.0.1:9/cli"

    refused = journeys(
        "webhooks", "create", *PARTNER, "--url", url, "--event", "offer.created", env=env
    )
    assert refused.returncode == 1
    assert "url must be a public http(s) address" in refused.stderr

    created = journeys(
        "webhooks", "create", *PARTNER, "--url", url, "--event", "offer.created",
        "--event", "offer.claimed", env=allowed,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    first, *_, secret = created.stdout.strip().splitlines()
    webhook_id = first.split()[0]
    assert secret.startswith("whsec_")
    assert first.split()[1:] == ["enabled", "offer.created,offer.claimed", url]

    listed = journeys("webhooks", "list", *PARTNER, env=env)
    assert listed.stdout.split() == [webhook_id, "enabled", "offer.created,offer.claimed", url]
    assert secret not in listed.stdout
    deliveries = journeys("webhooks", "deliveries", *PARTNER, webhook_id, env=env)
    assert deliveries.returncode == 0
    assert deliveries.stdout == ""

    deleted = journeys("webhooks", "delete", *PARTNER, webhook_id, env=env)
    assert deleted.stdout.split()[:2] == [webhook_id, "deleted"]
    assert journeys("webhooks", "list", *PARTNER, env=env).stdout == ""
    again = journeys("webhooks", "delete", *PARTNER, webhook_id, env=env)
    assert again.returncode == 1
    assert "Webhook not found" in again.stderr
    unknown = journeys("webhooks", "list", "--partner", "nobody", "--environment", "test", env=env)
    assert unknown.returncode == 1
    assert "Partner not found" in unknown.stderr
