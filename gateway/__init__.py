"""reasoning-gateway: authenticate, inspect, mask, forward and record LLM requests."""
__version__ = "0.1.0"
