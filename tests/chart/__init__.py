"""Offline tests of the Helm chart: render with the real helm, validate, assert on dicts."""
