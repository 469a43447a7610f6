"""Runtime settings, read once from the environment.

Every `journeys` command and `make run` read the same variables, so an operator sets a port or a
database URL in one place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from journeys.webhooks.schedule import DEFAULT_RETRY_SCHEDULE

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Run from a checkout, the data lives in it; installed from a wheel, in the current directory.
_DATA_DIR = REPO_ROOT / "data" if (REPO_ROOT / "pyproject.toml").is_file() else Path("data")
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{_DATA_DIR / 'journeys.db'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    http_port: int = 8080
    grpc_port: int = 50051
    admin_port: int = 9901
    host: str = "127.0.0.1"
    envoy_concurrency: int = 1
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    #: `json` or `text`; empty: JSON for `journeys serve`, text for the other commands.
    log_format: str = ""
    #: Prometheus metrics of `journeys serve` on 127.0.0.1; 0 turns the endpoint off.
    metrics_port: int = 9464
    #: Seconds between scheduled analytics runs inside `journeys serve`; 0 turns them off.
    analytics_interval: float = 900.0
    #: Seconds between the schedule's full analytics runs (every user recomputed, a safety
    #: net for the incremental ones); 0: only incremental runs.
    analytics_full_interval: float = 86400.0
    #: Requests a second per API key (token bucket refill); 0 turns rate limiting off.
    rate_limit: float = 100.0
    #: Requests a key may save up and spend at once.
    rate_burst: float = 200.0
    #: Web origins whose pages may call the API (CORS); `*` is any origin.
    cors_origins: tuple[str, ...] = ("*",)
    #: Lets webhooks point at loopback and private addresses (a receiver on this machine or
    #: inside the network); off, only public addresses are accepted and connected to.
    webhook_allow_private: bool = False
    #: Seconds before each retry of a webhook message; the last attempt follows the last.
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    #: Seeds the offer engine's sampling, so runs over the same data make the same offers;
    #: None (unset) draws fresh randomness.
    offer_seed: int | None = None
    #: grpc.aio server processes `journeys serve` runs on the one gRPC port (app/workers.py);
    #: 1 is a single process, as before workers existed.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: PostgreSQL connections `journeys serve` opens at most, its workers together (each
    #: takes an equal share): below the server's default `max_connections` of 100, leaving
    #: room for the analytics CLI, migrations and an operator's psql.
    database_connections: int = 40

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            database_url=env.get("JOURNEYS_DATABASE_URL") or defaults.database_url,
            http_port=_int(env, "JOURNEYS_HTTP_PORT", defaults.http_port),
            grpc_port=_int(env, "JOURNEYS_GRPC_PORT", defaults.grpc_port),
            admin_port=_int(env, "JOURNEYS_ADMIN_PORT", defaults.admin_port),
            envoy_concurrency=_int(env, "JOURNEYS_ENVOY_CONCURRENCY", defaults.envoy_concurrency),
            shutdown_grace_seconds=_float(
                env, "JOURNEYS_SHUTDOWN_GRACE", defaults.shutdown_grace_seconds
            ),
            log_level=(env.get("JOURNEYS_LOG_LEVEL") or defaults.log_level).upper(),
            log_format=_choice(env, "JOURNEYS_LOG_FORMAT", ("json", "text")),
            metrics_port=_int(env, "JOURNEYS_METRICS_PORT", defaults.metrics_port),
            analytics_interval=_float(
                env, "JOURNEYS_ANALYTICS_INTERVAL", defaults.analytics_interval
            ),
            analytics_full_interval=_float(
                env, "JOURNEYS_ANALYTICS_FULL_INTERVAL", defaults.analytics_full_interval
            ),
            rate_limit=_float(env, "JOURNEYS_RATE_LIMIT", defaults.rate_limit),
            rate_burst=_float(env, "JOURNEYS_RATE_BURST", defaults.rate_burst),
            cors_origins=_origins(env, "JOURNEYS_CORS_ORIGINS", defaults.cors_origins),
            webhook_allow_private=_bool(
                env, "JOURNEYS_WEBHOOK_ALLOW_PRIVATE", defaults.webhook_allow_private
            ),
            webhook_retry_schedule=_seconds_list(
                env, "JOURNEYS_WEBHOOK_RETRY_SCHEDULE", defaults.webhook_retry_schedule
            ),
            offer_seed=_int(env, "JOURNEYS_OFFER_SEED", None),
            workers=_positive(env, "JOURNEYS_WORKERS", defaults.workers),
            database_connections=_positive(
                env, "JOURNEYS_DATABASE_CONNECTIONS", defaults.database_connections
            ),
        )


#: What a browser sends in `Origin`: scheme://host[:port], nothing after it.
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+")


def _origins(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if not raw or not raw.strip():
        return default
    origins = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SystemExit(
                f"{name} must be comma-separated origins such as https://app.example.com "
                f"(or *), got {origin!r}"
            )
    return origins


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0"):
        raise SystemExit(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1")


def _seconds_list(
    env: Mapping[str, str], name: str, default: tuple[float, ...]
) -> tuple[float, ...]:
    raw = env.get(name)
    if not raw or not raw.strip():
        return default
    try:
        values = tuple(float(item) for item in raw.split(","))
    except ValueError:
        raise SystemExit(
            f"{name} must be comma-separated seconds such as 5,300,1800, got {raw!r}"
        ) from None
    if any(value < 0 for value in values):
        raise SystemExit(f"{name} must not hold negative delays, got {raw!r}")
    return values


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if raw and raw not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@overload
def _int(env: Mapping[str, str], name: str, default: int) -> int: ...


@overload
def _int(env: Mapping[str, str], name: str, default: None) -> int | None: ...


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative, got {raw!r}")
    return value
