"""Every query on a tenant's data, scoped by (partner, environment) through its `TenantScope`:
one store per concern, and `TenantStore` the one the use cases hold."""

from __future__ import annotations

from collections.abc import Callable

from journeys.domain import Tenant
from journeys.storage.activity import ActivityReads
from journeys.storage.analytics_state import AnalyticsStates
from journeys.storage.catalogue import Catalogue
from journeys.storage.connection import StoreConnection
from journeys.storage.erasure import Erasures
from journeys.storage.export import Exports
from journeys.storage.holdouts import Holdouts
from journeys.storage.ingest import Ingestion
from journeys.storage.members import Members
from journeys.storage.offers import Offers
from journeys.storage.profiles import Profiles
from journeys.storage.reports import OfferReports
from journeys.storage.scope import TenantScope
from journeys.storage.segments import Segments
from journeys.storage.suppressions import Suppressions
from journeys.storage.webhooks import Webhooks


class TenantStore(
    Profiles,
    Ingestion,
    ActivityReads,
    Segments,
    Members,
    Offers,
    Catalogue,
    Erasures,
    Suppressions,
    Exports,
    Holdouts,
    OfferReports,
    Webhooks,
    AnalyticsStates,
):
    def __init__(
        self,
        connection: StoreConnection,
        tenant: Tenant,
        on_announce: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(connection, TenantScope(tenant))
        self._on_announce = on_announce

    def announced(self) -> None:
        if self._on_announce is not None:
            self._on_announce()
