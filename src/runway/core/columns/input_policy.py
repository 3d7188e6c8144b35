"""The input policy: what serving and batch scoring do with input the training data never had.

It lives with the columns because the column checks apply it; a promotion
policy (:mod:`runway.core.governance.policy`) carries one, recorded on the version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runway.core.validation import Strict


class InputPolicy(Strict):
    """What serving and batch scoring do with input the training data never had."""

    unknown_columns: Literal["reject", "pass"] = Field(
        default="reject", description="A column the model was not trained on."
    )
    unseen_categories: Literal["reject", "pass"] = Field(
        default="reject",
        description="A category value absent from the training data (pass: the encoder ignores it).",
    )
    missing_values: Literal["reject", "pass"] = Field(
        default="pass", description="A null value (pass: the pipeline imputes it)."
    )
