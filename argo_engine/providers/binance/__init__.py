"""Binance spot connectivity: REST + websocket market data and the signed trading API.

``client`` does the I/O (httpx, websockets) and translates vendor errors into the argo error
tree; ``parsing`` and ``filters`` are pure; ``data`` and ``trading`` implement the ports.
Nothing here imports the engine, persistence or prefect.
"""
