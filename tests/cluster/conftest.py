"""Cluster tests share the session's farm nodes (`farm`, in tests/conftest.py)."""
