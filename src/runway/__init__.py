"""runway: from a tracked MLflow experiment to a served, monitored Production model."""

from __future__ import annotations

__version__ = "0.1.0"
