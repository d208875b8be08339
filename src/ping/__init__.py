"""Ping: a fast, safe scikit-learn inference service."""

__version__ = "0.1.0"
