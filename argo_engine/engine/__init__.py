"""The engine: the per-bar loop, callbacks, stats tracking. Never imports prefect."""
