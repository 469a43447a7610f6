"""Metrics and structured logs.

- Prometheus metrics (prometheus-client), served by `journeys serve` on 127.0.0.1 at
  `JOURNEYS_METRICS_PORT` (default 9464; 0 turns the endpoint off): gRPC requests and their
  latency by method and status code, events ingested / duplicates / rejected, analytics runs
  and the offers they generate.
- One log line per API call (`journeys.access`, written by the transport's call wrapper,
  `transport/calls.py`; health checks and reflection are not logged): request id (the
  `x-request-id` Envoy sets, or a `local-…` id for direct gRPC calls), method, status code,
  latency in ms and the partner id once the key is known. The key itself is never read here,
  so it cannot be logged.
- Log lines as JSON objects (default for `journeys serve`) or text (`JOURNEYS_LOG_FORMAT`).
  A line logged while a call is handled carries that call's request id.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

ACCESS_LOGGER = "journeys.access"
LOG_FORMATS = ("json", "text")
#: Calls logged at DEBUG only: Envoy health-checks every replica every few seconds.

# No `*_created` series beside every counter and histogram: nothing here reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

_LABELS = ("grpc_service", "grpc_method", "grpc_code")

REQUESTS = Counter(
    "grpc_server_handled",
    "Unary gRPC calls completed, by service, method and status code.",
    _LABELS,
)
LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle a unary gRPC call, by service, method and status code.",
    _LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS_INGESTED = Counter(
    "journeys_events_ingested", "Events stored as new (POST /events and POST /track)."
)
EVENTS_DUPLICATES = Counter(
    "journeys_events_duplicates", "Events not stored again: their messageId was already stored."
)
EVENTS_REJECTED = Counter(
    "journeys_events_rejected", "Items of POST /track batches rejected by validation."
)
ANALYTICS_RUNS = Histogram(
    "journeys_analytics_run_duration_seconds",
    "Duration of analytics job runs in this process, by outcome (succeeded, failed).",
    ("status",),
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
ANALYTICS_OFFERS = Counter(
    "journeys_analytics_offers_generated", "Offers created by analytics job runs in this process."
)
WEBHOOK_DELIVERIES = Counter(
    "journeys_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retrying, failed, disabled (410).",
    ("outcome",),
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "journeys_webhook_queue_depth", "Webhook messages waiting for delivery (pending)."
)
WEBHOOK_OLDEST_PENDING = Gauge(
    "journeys_webhook_oldest_pending_seconds",
    "Age of the oldest webhook message still pending; 0 when none is.",
)


# --- The call being handled -------------------------------------------------------------------


@dataclass
class RequestInfo:
    request_id: str
    partner_id: str | None = None


_current: ContextVar[RequestInfo | None] = ContextVar("journeys_request", default=None)


def enter(info: RequestInfo) -> Token[RequestInfo | None]:
    """`info` is the call being handled: its log lines carry `request_id`; the servicer fills
    in `partner_id` from the call's `Caller` once the use case has returned or failed. The
    token is `leave`'s, when the call ends."""
    return _current.set(info)


def leave(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


def current_request() -> RequestInfo | None:
    return _current.get()


def current_request_id() -> str | None:
    info = _current.get()
    return info.request_id if info is not None else None


# --- Counters the use cases feed --------------------------------------------------------------


def events_tracked(*, accepted: int = 0, duplicates: int = 0, rejected: int = 0) -> None:
    if accepted:
        EVENTS_INGESTED.inc(accepted)
    if duplicates:
        EVENTS_DUPLICATES.inc(duplicates)
    if rejected:
        EVENTS_REJECTED.inc(rejected)


def analytics_run_finished(status: str, seconds: float, offers_created: int) -> None:
    ANALYTICS_RUNS.labels(status).observe(seconds)
    if offers_created:
        ANALYTICS_OFFERS.inc(offers_created)


def webhook_attempted(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def webhook_backlog(depth: int, oldest_seconds: float) -> None:
    WEBHOOK_QUEUE_DEPTH.set(depth)
    WEBHOOK_OLDEST_PENDING.set(oldest_seconds)


# --- The metrics endpoint ---------------------------------------------------------------------


class MetricsServer:
    """Prometheus' text exposition at http://127.0.0.1:PORT/metrics, in a thread of its own."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        try:
            self._server, self._thread = prometheus_client.start_http_server(port, addr=host)
        except OSError as error:
            raise SystemExit(
                f"cannot serve metrics on {host}:{port} ({error.strerror}): set "
                "JOURNEYS_METRICS_PORT to a free port (one per process), or 0 to turn it off"
            ) from None
        self.address = f"{host}:{self._server.server_port}"

    def stop(self) -> None:
        server: WSGIServer = self._server
        server.shutdown()
        server.server_close()
        self._thread.join(timeout=5)


# --- Logging ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's `fields`, the
    request id of the call being handled, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        request_id = current_request_id()
        if request_id is not None:
            entry.setdefault("request_id", request_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value …` with the same fields as the JSON lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = dict(getattr(record, "fields", None) or {})
        request_id = current_request_id()
        if request_id is not None:
            fields.setdefault("request_id", request_id)
        if not fields:
            return text
        pairs = " ".join(f"{name}={value}" for name, value in fields.items())
        head, newline, rest = text.partition("\n")  # keep a traceback below the line
        return f"{head} {pairs}{newline}{rest}"


def configure_logging(level: str, log_format: str) -> None:
    """Root logging to stderr in `log_format` (`json` or `text`) at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
