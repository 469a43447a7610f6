"""Every query on a tenant's data, scoped by (partner, environment) through its `TenantScope`:
one store per concern, and `TenantStore` the one the use cases hold."""

from __future__ import annotations

from journeys.domain import Tenant
from journeys.storage.activity import ActivityReads
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
):
    def __init__(self, connection: StoreConnection, tenant: Tenant) -> None:
        super().__init__(connection, TenantScope(tenant))
