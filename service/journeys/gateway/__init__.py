"""The REST edge: Envoy's configuration and process, and the OpenAPI document it serves."""

from journeys.gateway.config import DESCRIPTOR, OPENAPI_DOCUMENT, render_config
from journeys.gateway.process import Gateway, envoy_binary

__all__ = ["DESCRIPTOR", "OPENAPI_DOCUMENT", "Gateway", "envoy_binary", "render_config"]
