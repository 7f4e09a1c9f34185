"""Prefect flows over argo_engine: ``trading-session`` (parent) and ``trading-day`` (child).

Flow bodies only sequence calls into ``argo_engine.session``; tasks exchange small summaries and
state passes through the run folders.
"""
