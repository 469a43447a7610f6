"""Tooling for development and benchmarks, outside the service's runtime core."""
