"""The model a batch is scored with: resolved once, downloaded once, with its contract and policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.contract import DataContract, cast_to_signature
from runway.core.columns.input_policy import InputPolicy
from runway.core.training.pipeline import MODEL_STEP
from runway.errors import AuditUnverified, ScoringError
from runway.jobs.onnx import load_for_scoring
from runway.scoring.result import LINEAGE
from runway.settings import Settings, get_settings
from runway.store import audit, models, registry, tracking, trust
from runway.store.served import ResolvedModel

PREDICTION = "prediction"
PROBA_PREFIX = "proba_"

# Estimators whose predict() is, in scikit-learn's own code, classes_[argmax(predict_proba)]:
# for them one predict_proba pass gives both outputs (checked on the first chunk anyway).
_PREDICT_IS_ARGMAX = frozenset(
    {
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "HistGradientBoostingClassifier",
    }
)


@dataclass
class LoadedModel:
    """A resolved model version, loaded once, with what scoring needs around it."""

    resolved: ResolvedModel
    contract: DataContract
    policy: InputPolicy
    local_dir: Path
    estimator: Any
    input_types: dict[str, str]  # signature column -> MLflow type name
    classes: list[Any] | None = None
    proba: bool = False
    threads: int = 1  # BLAS/OpenMP threads and n_jobs while predicting (runway.core.threads)
    _argmax_checked: bool = False
    _argmax: bool = False

    @property
    def features(self) -> list[str]:
        """Contract columns, in training order."""
        return self.contract.names

    @property
    def numeric(self) -> set[str]:
        """Contract columns of kind numeric."""
        return {c for c, e in self.contract.columns.items() if e.effective_kind == "numeric"}

    def proba_names(self) -> list[str]:
        """``proba_<class>`` per class, by the class's name where the contract records one."""
        target = self.contract.target
        labels = [str(c) for c in (target.classes if target else None) or []]
        names = dict(zip(labels, (target.class_names if target else None) or labels, strict=True))
        return [f"{PROBA_PREFIX}{names.get(str(c), c)}" for c in self.classes or []]

    def output_names(self) -> list[str]:
        """The prediction columns this model adds."""
        return [PREDICTION, *(self.proba_names() if self.proba else [])]

    def passthrough(
        self, columns: Sequence[str], key_columns: Sequence[str], source: str
    ) -> list[str]:
        """The columns to pass through to the output; errors for a file the model cannot take.

        A missing required column or (under a policy that rejects them) an unknown
        column would reject every row: better said once, before anything is scored.
        An optional column may be left out: it is then missing on every row.
        """
        contract_columns = self.features
        entries = self.contract.columns
        missing = [c for c in contract_columns if c not in columns and not entries[c].optional]
        if missing:
            raise ScoringError(
                f"{source}: required column(s) {missing} missing; the model was trained on "
                f"{', '.join(contract_columns[:20])}"
            )
        absent_keys = [c for c in key_columns if c not in columns]
        if absent_keys:
            raise ScoringError(f"{source}: key column(s) {absent_keys} not in the input")
        unknown = [c for c in columns if c not in contract_columns and c not in key_columns]
        if unknown and self.policy.unknown_columns == "reject":
            raise ScoringError(
                f"{source}: column(s) {unknown[:10]} are not model inputs; name identifiers "
                f"with --key-column, drop the others, or set `input: {{unknown_columns: pass}}` "
                f"in registry/{self.resolved.name}.yaml and promote the version again"
            )
        passthrough = list(key_columns) if key_columns else list(columns)
        clash = [c for c in passthrough if c in {*self.output_names(), *LINEAGE}]
        if clash:
            raise ScoringError(
                f"{source}: input column(s) {clash} clash with output columns; "
                "rename them or pass --key-column"
            )
        return passthrough

    def cast(self, valid: pd.DataFrame) -> pd.DataFrame:
        """Checked rows in the signature's column order and types (:func:`cast_to_signature`)."""
        return cast_to_signature(valid, self.input_types, self.features)

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and, for classifiers with ``proba``, class probabilities."""
        if len(X) == 0:
            return np.empty(0, dtype=object), None
        if not self.proba:
            return np.asarray(self.estimator.predict(X)), None
        probabilities = np.asarray(self.estimator.predict_proba(X), dtype="float64")
        if not self._argmax_checked:
            self._argmax_checked = True
            if _final_name(self.estimator) in _PREDICT_IS_ARGMAX:
                head = X.iloc[:1000]
                taken = np.asarray(self.classes, dtype=object)[probabilities[:1000].argmax(axis=1)]
                self._argmax = bool(
                    np.array_equal(taken, np.asarray(self.estimator.predict(head), dtype=object))
                )
        if self._argmax:
            labels = np.asarray(self.estimator.classes_).take(probabilities.argmax(axis=1))
        else:
            labels = np.asarray(self.estimator.predict(X))
        return labels, probabilities


def _final_name(estimator: Any) -> str:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__name__


def load_model(
    model: str,
    *,
    stage: str | None = "Production",
    version: str | int | None = None,
    workdir: Path,
    proba: bool = True,
    threads: int = 1,
    settings: Settings | None = None,
) -> LoadedModel:
    """Resolve ``model`` (as serving does), download and check it once, load it, with its contract.

    The version is checked before anything from it is loaded
    (:func:`runway.store.trust.fetch_verified`, :class:`UntrustedModel` if it
    fails), and the folder checked is the folder loaded. The input policy is the
    one recorded on the version when it was promoted. Estimators that predict in
    parallel (``n_jobs``) get ``threads`` workers: a model is logged with 1, which
    suits single rows, not million-row chunks.
    """
    from sklearn.base import is_classifier

    settings = settings or get_settings()
    audited = audit.resolve_audited(
        model, settings, stage, None if version is None else str(version)
    )
    if audited.refused:  # a batch names the version it scored with: never a stand-in
        raise AuditUnverified(f"{audited.refused}: not scoring with it; {audited.fix}")
    resolved = audited.model
    if resolved.run_id is None:
        raise ScoringError(
            f"{resolved.uri} has no source run, so no data contract to check rows against; "
            "register versions made by `runway train` or `runway sweep`"
        )
    contract = tracking.load_contract(resolved.run_id)
    policy = registry.applied_input_policy(resolved.name, resolved.version)
    local = trust.fetch_verified(resolved, workdir, settings)
    estimator = load_for_scoring(local, threads)  # the pipeline, or an ONNX version's graph
    # The estimator's own n_jobs only: a ColumnTransformer's would start process pools.
    jobs = [k for k in estimator.get_params(deep=True) if k == f"{MODEL_STEP}__n_jobs"]
    if jobs and threads > 1:
        estimator.set_params(**dict.fromkeys(jobs, threads))
    input_types = models.signature_inputs(local)
    classifier = is_classifier(estimator) and hasattr(estimator, "predict_proba")
    classes = list(estimator.classes_) if classifier else None
    return LoadedModel(
        resolved,
        contract,
        policy,
        local,
        estimator,
        input_types,
        classes,
        proba and classifier,
        threads,
    )
