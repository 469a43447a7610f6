"""Metrics and logs of a real `journeys serve` with its defaults (JSON logs) and metrics on:
request counters and latency by method and code, event and analytics counters, one log line
per call with the request id and the partner, never the key; everything bound to 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import event_pb2
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from journeys.app import READY_LINE
from journeys.config import Settings
from journeys.observability import JsonFormatter, TextFormatter
from prometheus_client.parser import text_string_to_metric_families

from scripts.stack import Stack, free_port, migrate, running_stack
from tests.api.rest import headers, success

BASE = "/v1/user-journeys"
SERVICE = "gamifyhost.userjourneys.v1.UserJourneysService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def observed(database_url: str) -> Iterator[tuple[Stack, int]]:
    """A stack with serve's own logging default (JSON), metrics on a port of its own, and the
    analytics job every second."""
    migrate(database_url)
    metrics_port = free_port()
    with running_stack(
        database_url,
        env_overrides={
            "JOURNEYS_METRICS_PORT": str(metrics_port),
            "JOURNEYS_LOG_FORMAT": "",
            "JOURNEYS_ANALYTICS_INTERVAL": "1",
        },
    ) as stack:
        yield stack, metrics_port


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def listening_address(port: int) -> str:
    """The IPv4 address a local TCP port listens on, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":
            return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    raise AssertionError(f"nothing listens on port {port}")


def test_metrics_count_calls_events_and_analytics(
    observed: tuple[Stack, int], tmp_path: Path
) -> None:
    stack, metrics_port = observed
    key = stack.new_key(f"partner-{uuid.uuid4()}")
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        for _ in range(2):
            success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "m1"}))
        assert http.get(f"{BASE}/users/nobody", headers={"X-API-Key": key}).status_code == 404
        bad_key = {"X-API-Key": "pk_test_" + "0" * 32}
        assert http.get(f"{BASE}/users/m1", headers=bad_key).status_code == 401
        event = {"externalId": "m1", "category": "GAME_PLAY", "eventType": "spin"}
        once = {**event, "messageId": "once"}
        success(http.post(f"{BASE}/events", headers=headers(key), json=once))
        success(http.post(f"{BASE}/events", headers=headers(key), json=once))
        batch = [event, once, {**event, "category": "NOPE"}]
        success(http.post(f"{BASE}/track", headers=headers(key), json={"events": batch}))

    # The scheduled job (every second here) gives the new user its welcome offers.
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(metrics_port)
        if value(samples, "journeys_analytics_offers_generated_total") > 0:
            break
        assert time.monotonic() < deadline, "no analytics run generated offers"
        time.sleep(0.5)

    calls = "grpc_server_handled_total"
    assert value(samples, calls, grpc_service=SERVICE, grpc_method="TrackUser", grpc_code="OK") == 2
    assert value(samples, calls, grpc_service=SERVICE, grpc_method="GetUser", grpc_code="NOT_FOUND")
    assert value(
        samples, calls, grpc_service=SERVICE, grpc_method="GetUser", grpc_code="UNAUTHENTICATED"
    )
    assert value(samples, calls, grpc_service=SERVICE, grpc_method="TrackEvent", grpc_code="OK")
    latency = "grpc_server_handling_seconds_count"
    assert value(samples, latency, grpc_service=SERVICE, grpc_method="TrackUser", grpc_code="OK")
    assert value(samples, "journeys_events_ingested_total") == 2  # one single, one in the batch
    assert value(samples, "journeys_events_duplicates_total") == 2
    assert value(samples, "journeys_events_rejected_total") == 1
    runs = "journeys_analytics_run_duration_seconds_count"
    assert value(samples, runs, status="succeeded") >= 1

    # Metrics and Envoy's admin interface answer on the loopback address only.
    assert listening_address(metrics_port) == "127.0.0.1"
    assert listening_address(stack.admin_port) == "127.0.0.1"


def access_lines(stack: Stack) -> list[dict[str, Any]]:
    """Every log line of the server, parsed: each must be a JSON object."""
    lines: list[dict[str, Any]] = []
    for line in stack.log_text().splitlines():
        if not line.strip() or line.strip() == READY_LINE:
            continue
        entry = json.loads(line)  # structured: every log line is one JSON object
        assert isinstance(entry, dict)
        lines.append(entry)
    return [line for line in lines if line["logger"] == "journeys.access"]


def test_one_json_log_line_per_call_with_request_id_and_partner_never_the_key(
    observed: tuple[Stack, int],
) -> None:
    stack, _ = observed
    key = stack.new_key(f"partner-{uuid.uuid4()}")
    wrong_key = "pk_test_" + uuid.uuid4().hex
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        created = http.post(
            f"{BASE}/users",
            headers={**headers(key), "X-Request-Id": f"{run}-created"},
            json={"externalId": "logged"},
        )
        partner_id = success(created)["partnerId"]
        http.get(f"{BASE}/users/nobody", headers={"X-API-Key": key, "X-Request-Id": f"{run}-404"})
        http.get(
            f"{BASE}/users/logged", headers={"X-API-Key": wrong_key, "X-Request-Id": f"{run}-401"}
        )
    with grpc.insecure_channel(stack.direct_target) as channel:
        stub = pb_grpc.UserJourneysServiceStub(channel)
        stub.TrackEvent(
            pb.TrackEventRequest(
                event=event_pb2.EventInput(
                    external_id="logged", category="CUSTOM", event_type="direct"
                )
            ),
            metadata=(("x-api-key", key), ("x-request-id", f"{run}-grpc")),
        )
        stub.GetUser(pb.GetUserRequest(external_id="logged"), metadata=(("x-api-key", key),))

    deadline = time.monotonic() + 10
    while True:
        lines = access_lines(stack)
        by_id = {line["request_id"]: line for line in lines}
        if f"{run}-grpc" in by_id and any(
            line["method"] == "GetUser" and line["request_id"].startswith("local-")
            for line in lines
        ):
            break
        assert time.monotonic() < deadline, "log lines missing"
        time.sleep(0.2)

    expected = {
        f"{run}-created": ("TrackUser", "OK", partner_id),
        f"{run}-404": ("GetUser", "NOT_FOUND", partner_id),
        f"{run}-401": ("GetUser", "UNAUTHENTICATED", None),
        f"{run}-grpc": ("TrackEvent", "OK", partner_id),
    }
    for request_id, (method, code, partner) in expected.items():
        (line,) = [line for line in lines if line["request_id"] == request_id]
        assert (line["method"], line["code"], line["partner_id"]) == (method, code, partner)
        assert line["service"] == SERVICE
        assert line["level"] == "INFO"
        assert isinstance(line["latency_ms"], int | float)
        assert line["latency_ms"] >= 0
    log = stack.log_text()
    assert key not in log
    assert wrong_key not in log
    assert key[8:] not in log, "not even the key's hex part"


def test_log_format_and_metrics_port_settings() -> None:
    assert Settings.from_env({}).log_format == ""  # json for serve, text for the rest
    assert Settings.from_env({"JOURNEYS_LOG_FORMAT": "TEXT"}).log_format == "text"
    assert Settings.from_env({}).metrics_port == 9464
    assert Settings.from_env({"JOURNEYS_METRICS_PORT": "0"}).metrics_port == 0
    with pytest.raises(SystemExit, match="JOURNEYS_LOG_FORMAT must be one of json, text"):
        Settings.from_env({"JOURNEYS_LOG_FORMAT": "xml"})


def test_formatters_carry_the_fields() -> None:
    record = logging.LogRecord("journeys.access", logging.INFO, __file__, 1, "m %s", ("x",), None)
    record.fields = {"request_id": "r-1", "code": "OK"}
    assert json.loads(JsonFormatter().format(record)) == {
        "time": json.loads(JsonFormatter().format(record))["time"],
        "level": "INFO",
        "logger": "journeys.access",
        "message": "m x",
        "request_id": "r-1",
        "code": "OK",
    }
    assert (
        TextFormatter().format(record).endswith("INFO journeys.access: m x request_id=r-1 code=OK")
    )
