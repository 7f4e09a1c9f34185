"""Feeds and brokers behind the ports: synthetic, replay, paper, Binance."""
