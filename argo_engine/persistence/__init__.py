"""Persistence: run folders, write-ahead journal, atomic Parquet files and stats.yaml.

Imports duckdb and pyarrow; never imports engine, strategies, providers or prefect.
"""
