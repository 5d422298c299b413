"""Enforcing a decision on records: compiled views, masks, row filters."""
