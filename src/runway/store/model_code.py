"""The code every model runway logs carries: its transformers, so MLflow alone can load it.

A logged pipeline holds runway's own transformers (``runway.core.training.transformers``);
an environment built from the model's own ``requirements.txt`` (``mlflow models
serve``, ``generate-dockerfile``, KServe, SageMaker) has no runway, so the model
ships a minimal copy of the package path its skops file names, as MLflow
``code_paths``: :data:`~runway.core.governance.trust.MODEL_CODE_FILES`, nothing
else. Class paths stay the same, so the allow-list is unchanged; in runway's own
processes ``runway`` is already imported and its installed copy wins. The trust
check accepts exactly these files, byte-equal to the installed runway's.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runway.core.governance.trust import MODEL_CODE_FILES, PACKAGE_PARENT


@contextmanager
def model_code_paths() -> Iterator[list[str]]:
    """``code_paths`` for ``log_model``: a temporary ``runway/`` holding only the shipped files."""
    with tempfile.TemporaryDirectory(prefix="runway-model-code-") as tmp:
        for name in MODEL_CODE_FILES:
            target = Path(tmp, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE_PARENT / name, target)
        yield [str(Path(tmp, "runway"))]
