"""Tools over a data output path: session catalog, cross-session SQL, stats, HTML reports.

Read-only: nothing here writes into run folders.
"""
