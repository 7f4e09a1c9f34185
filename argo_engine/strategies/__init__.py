"""Strategy API, indicators, the registry and the shipped strategies.

Strategies depend only on domain values and the context protocol; never on providers,
persistence, duckdb, httpx or websockets.
"""
