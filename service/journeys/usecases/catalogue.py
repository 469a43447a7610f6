"""The offer catalogue: the shipped default (catalogue.toml) merged with a partner's
per-environment override, both plain data; and the operators' one write, the override."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from journeys.domain import Environment, Tenant
from journeys.errors import InvalidArgument
from journeys.rules import CatalogueEntry
from journeys.storage.database import Database

DEFAULT_FILE = Path(__file__).with_name("catalogue.toml")

_FIELDS: dict[str, type | tuple[type, ...]] = {
    "priority": int,
    "game_type": str,
    "title": str,
    "description": str,
    "points_value": int,
    "validity_hours": (int, float),
    "cooldown_hours": (int, float),
    "once_per_utc_day": bool,
    "enabled": bool,
    "metadata": dict,
}
_DEFAULTS: dict[str, Any] = {"once_per_utc_day": False, "enabled": True, "metadata": {}}


def default() -> dict[str, dict[str, Any]]:
    with DEFAULT_FILE.open("rb") as file:
        return tomllib.load(file)


def entries(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[CatalogueEntry]:
    """The effective catalogue: every default type, with the override's fields on top."""
    merged = default()
    for offer_type, fields in (overrides or {}).items():
        merged[offer_type] = {**merged[offer_type], **fields}
    return [_entry(offer_type, {**_DEFAULTS, **fields}) for offer_type, fields in merged.items()]


def priorities(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, int]:
    """Each offer type's priority in the effective catalogue (lower comes first), without
    building the whole catalogue: GET offers orders by it on every call."""
    order = dict(_default_priorities())
    for offer_type, fields in (overrides or {}).items():
        if "priority" in fields:
            order[offer_type] = int(fields["priority"])
    return order


@functools.cache
def _default_priorities() -> dict[str, int]:
    return {offer_type: int(fields["priority"]) for offer_type, fields in default().items()}


def check_override(override: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validates a partner's override file: known types, known fields, right types."""
    known = default()
    clean: dict[str, dict[str, Any]] = {}
    for offer_type, fields in override.items():
        if offer_type not in known:
            raise InvalidArgument.field(offer_type, f"unknown offer type {offer_type!r}")
        if not isinstance(fields, Mapping):
            raise InvalidArgument.field(offer_type, f"{offer_type} must be a table of fields")
        for name, value in fields.items():
            expected = _FIELDS.get(name)
            if expected is None:
                raise InvalidArgument.field(name, f"{offer_type}.{name} is not a catalogue field")
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
                raise InvalidArgument.field(name, f"{offer_type}.{name} has the wrong type")
            if isinstance(value, int | float) and value < 0:
                raise InvalidArgument.field(name, f"{offer_type}.{name} must not be negative")
        clean[offer_type] = dict(fields)
    entries(clean)  # every merged entry must still build
    return clean


def _entry(offer_type: str, fields: Mapping[str, Any]) -> CatalogueEntry:
    return CatalogueEntry(
        offer_type=offer_type,
        priority=int(fields["priority"]),
        game_type=str(fields["game_type"]),
        title=str(fields["title"]),
        description=str(fields["description"]),
        points_value=int(fields["points_value"]),
        validity=timedelta(hours=float(fields["validity_hours"])),
        cooldown=timedelta(hours=float(fields["cooldown_hours"])),
        once_per_utc_day=bool(fields["once_per_utc_day"]),
        enabled=bool(fields["enabled"]),
        metadata=dict(fields["metadata"]),
    )


async def override(
    database: Database,
    partner: str,
    environment: Environment,
    now: datetime,
    replacement: Mapping[str, Any] | None = None,
) -> list[CatalogueEntry] | None:
    """A partner's effective catalogue after replacing its override, when `replacement` is
    given (checked first; `{}` resets it to the default); None for an unknown partner."""
    clean = None if replacement is None else check_override(replacement)
    async with database.transaction(write=clean is not None) as tx:
        partner_id = await tx.keys.partner_id(partner)
        if partner_id is None:
            return None
        store = tx.tenant(Tenant(partner_id, environment))
        if clean is not None:
            await store.set_catalogue_override(clean, now)
        return entries(await store.catalogue_override())
