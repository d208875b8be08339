"""Readiness: one answer shared by /readyz and the V2 health routes."""

from dataclasses import dataclass


@dataclass
class Readiness:
    """Why the service is not ready, if it is not: no model yet, a refused model, or draining."""

    model_loaded: bool = False
    problem: str | None = None
    draining: bool = False

    @property
    def reason(self) -> str | None:
        """None when ready; otherwise a sentence for the 503 body."""
        if self.draining:
            return "shutting down: draining in-flight requests"
        if self.problem is not None:
            return self.problem
        if not self.model_loaded:
            return "model is not loaded yet"
        return None
