"""Hardening: property-based fuzzing and the tenant-isolation matrix, through the real Envoy,
server and database."""
