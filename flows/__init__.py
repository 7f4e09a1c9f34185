"""Prefect flows over argo_engine: trading-session and trading-day."""
