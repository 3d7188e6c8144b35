"""Types for the JSON and YAML documents runway builds or reads as plain data.

A document is ``dict[str, object]``, not ``dict[str, Any]``: what is built can be
filled freely, and a value read back must be narrowed (``isinstance``) before use,
so mypy checks what ``Any`` would wave through. Structured artifacts (the data
contract, the reference profile, specs, policies) have pydantic models instead.
"""

from __future__ import annotations

Document = dict[str, object]
# An estimator parameter as Optuna suggests it and scikit-learn's set_params takes it.
ParamValue = bool | int | float | str | None
Params = dict[str, ParamValue]
