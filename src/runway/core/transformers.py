"""Where runway's transformers lived before core had rooms: an alias, kept so that versions
logged then (their skops files name ``runway.core.transformers.*``) still load.

New code imports :mod:`runway.core.training.transformers`.
"""

from __future__ import annotations

from runway.core.training.transformers import BooleanEncoder, CategoryText, DatetimeParts

__all__ = ["BooleanEncoder", "CategoryText", "DatetimeParts"]
