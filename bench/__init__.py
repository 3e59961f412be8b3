"""Benchmark harness: fake backend vs a bare aiohttp proxy vs the gateway, all on loopback (see README.md)."""
