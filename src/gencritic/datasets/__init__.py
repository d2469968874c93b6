"""Adapters that turn dataset layouts (human-rated sets, Toys4k, ...) into items."""
