"""Where a twin's loader lived before core had rooms: an alias, kept so that twins logged then
(their MLmodel names ``loader_module: runway.core.onnx_model``) still load.

New twins name :mod:`runway.core.onnx.model`.
"""

from __future__ import annotations

from runway.core.onnx.model import _load_pyfunc

__all__ = ["_load_pyfunc"]
