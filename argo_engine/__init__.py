"""argo-engine: a live and paper trading engine with crash-safe per-day Parquet persistence.

The library never imports prefect; Prefect flows live in the sibling ``flows`` package.
"""

__version__ = "0.1.0"
