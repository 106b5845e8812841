"""Helpers for the browser tests (Tests/python/test_browser_*.py). See docs/WEB.md."""
