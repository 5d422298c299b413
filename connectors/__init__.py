"""Connectors: department databases and files in and out of the bus (see issue: connectors)."""
