"""The package version; pyproject.toml carries the same number (tests/test_engine.py compares them)."""

__version__ = "0.1.0"
