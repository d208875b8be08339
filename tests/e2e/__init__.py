"""Cluster tests: install the chart into a real Kubernetes cluster with pytest-helm-charts."""
