"""Use cases: validation, transactions and orchestration behind every API call."""

from journeys.usecases.journeys import Journeys

__all__ = ["Journeys"]
