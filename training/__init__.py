"""Training: fits the bundled example models and writes Ping's artifacts."""
