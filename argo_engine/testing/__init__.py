"""Fakes and servers shipped for tests and demos (mock Binance, fake clock, scripted feeds)."""
