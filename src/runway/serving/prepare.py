"""The steps of serving a version that need MLflow, each run in a short-lived child.

``runway serve``'s gateway never imports MLflow: its client and SQL stores would
cost the gateway ~120 MB for as long as it serves, for work it does only at
start-up and on a switch. So it runs ``python -m runway.serving.prepare`` for
that work: resolve which version a stage names, and, given a folder, fetch the
version into it and check it (:func:`runway.store.trust.fetch_verified`), and
read its data contract, its applied input policy and its signature. The child
reads the settings as JSON on stdin and prints one JSON document on stdout: the
answer, or the error (its runway class and message), which the gateway raises
as if it had happened there. Its log goes to the gateway's stderr.

Both sides live here: :func:`main` runs in the child, :func:`resolve`,
:func:`follow` and :func:`fetch` in the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict, cast

from runway import errors
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.schema import DataContract
from runway.errors import RunwayError, ServeError
from runway.serving.children import child_command, settings_json
from runway.settings import Settings
from runway.store.served import ResolvedModel


class Started(Protocol):
    """What :func:`launched` reads of :class:`runway.serving.launch.Launched` (typed here, so
    this module, which the serve command's children run, imports none of the launcher)."""

    child: Any  # a Popen-like: communicate, poll, kill, wait, returncode
    options: list[str]


class Answer(TypedDict, total=False):
    """The child's one JSON document: the version, and what serving it needs; or the error."""

    model: dict[str, Any]  # ResolvedModel's fields
    contract: dict[str, object]  # DataContract, as its file has it
    policy: dict[str, object]  # InputPolicy
    local: str
    input_types: dict[str, str]
    refused: str  # the registry's Production, not explained by the audit chain, and how to fix
    failed: str  # following: why the new version could not be fetched or checked
    timeline: dict[str, float]  # the child's start-up phases and their seconds
    error: str
    type: str


@dataclass(frozen=True)
class Fetched:
    """A version fetched and checked into a private folder, with what serving it needs."""

    model: ResolvedModel
    contract: DataContract
    policy: InputPolicy
    local: Path  # the checked model folder
    input_types: dict[str, str]  # input column -> MLflow type, from the signature
    refused: str = ""  # the registry's Production the audit chain does not explain, if any
    timeline: dict[str, float] = field(default_factory=dict)  # the child's phases, seconds


@dataclass(frozen=True)
class Resolved:
    """The version to serve, and the registry's Production it stands in for (if refused)."""

    model: ResolvedModel
    refused: str = ""
    fetched: Fetched | None = None  # fetched and checked too, when it was not the one served
    failed: str = ""  # why the new version was not fetched (refused by the trust check, ...)


async def resolve(settings: Settings, model: str, stage: str = "Production") -> Resolved:
    """The version of ``model`` in ``stage`` now, as the audit chain explains it."""
    doc = await _ask(settings, model, ["--stage", stage])
    return Resolved(ResolvedModel(**doc["model"]), doc.get("refused", ""))


async def follow(settings: Settings, model: str, runtime: Path, served: str | None) -> Resolved:
    """Production now and, when it is not ``served``, that version fetched and checked into
    a new folder under ``runtime``: one child for a switch, not one to resolve and another
    to fetch (each imports MLflow: seconds, many on a busy host)."""
    folder = Path(tempfile.mkdtemp(prefix="version-", dir=runtime))
    unless = ["--unless", served] if served is not None else []
    doc: Answer = {}
    try:
        doc = await _ask(
            settings, model, ["--stage", "Production", "--folder", str(folder), *unless]
        )
    finally:
        if "local" not in doc:  # nothing fetched: the version served, or an error
            shutil.rmtree(folder, ignore_errors=True)
    fetched = _fetched(doc) if "local" in doc else None
    return Resolved(
        ResolvedModel(**doc["model"]), doc.get("refused", ""), fetched, doc.get("failed", "")
    )


async def fetch(settings: Settings, model: str, version: str | None, folder: Path) -> Fetched:
    """Fetch ``model`` v``version`` (None: Production's) into ``folder`` and check it."""
    which = ["--version", version] if version is not None else ["--stage", "Production"]
    return _fetched(await _ask(settings, model, [*which, "--folder", str(folder)]))


def take(
    fetched: Fetched | None, version: str | None, runtime: Path
) -> tuple[Fetched | None, Path]:
    """``fetched`` and its folder if it is ``version``; else a new folder under ``runtime``
    (and ``fetched``'s removed: it will not be started)."""
    folder = top(fetched.local, runtime) if fetched is not None else None
    if fetched is not None and folder is not None and fetched.model.version == version:
        return fetched, folder
    discard(fetched, runtime)
    return None, Path(tempfile.mkdtemp(prefix="version-", dir=runtime))


def top(path: Path | None, runtime: Path) -> Path | None:
    """The folder directly under ``runtime`` that holds ``path`` (a fetched version's)."""
    if path is None or path == runtime or not path.is_relative_to(runtime):
        return None
    return runtime / path.relative_to(runtime).parts[0]


def discard(fetched: Fetched | None, runtime: Path) -> None:
    """Remove a fetched version's folder (it will not be started)."""
    if fetched is not None and (folder := top(fetched.local, runtime)) is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _fetched(doc: Answer) -> Fetched:
    return Fetched(
        ResolvedModel(**doc["model"]),
        contract=DataContract.model_validate(doc["contract"]),
        policy=InputPolicy.model_validate(doc["policy"]),
        local=Path(doc["local"]),
        input_types=doc["input_types"],
        refused=doc.get("refused", ""),
        timeline=doc.get("timeline", {}),
    )


async def _ask(settings: Settings, model: str, options: list[str]) -> Answer:
    """Run the child; its answer, or raise the runway error it met (or ServeError if it failed)."""
    child = await asyncio.create_subprocess_exec(
        *child_command(model, options),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(settings.serve_prepare_timeout):
            out, _ = await child.communicate(settings_json(settings).encode())
    except TimeoutError:
        raise _too_slow(settings, model, options) from None
    finally:  # hung, or cancelled (shutting down): do not leave it behind
        if child.returncode is None:
            child.kill()
            await child.wait()
    return _answer(model, options, child.returncode, out)


async def launched(launch: Started, settings: Settings, model: str) -> Fetched:
    """The answer of the child :func:`runway.serving.launch.launch` started for Production."""
    child, options = launch.child, launch.options
    try:
        async with asyncio.timeout(settings.serve_prepare_timeout):
            out, _ = await asyncio.to_thread(child.communicate)
    except TimeoutError:
        raise _too_slow(settings, model, options) from None
    finally:  # hung, or cancelled (shutting down): do not leave it behind
        if child.poll() is None:
            child.kill()
            child.wait()
    return _fetched(_answer(model, options, child.returncode, out))


def _too_slow(settings: Settings, model: str, options: list[str]) -> ServeError:
    return ServeError(
        f"asking MLflow about {model} ({' '.join(options)}) took over "
        f"{settings.serve_prepare_timeout:g}s and was stopped; a slow store or "
        "artifact download? (RUNWAY_SERVE_PREPARE_TIMEOUT)"
    )


def _answer(model: str, options: list[str], code: int | None, out: bytes) -> Answer:
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    if code != 0 or not isinstance(doc, dict):
        raise ServeError(
            f"asking MLflow about {model} ({' '.join(options)}) failed "
            f"(exit {code}); its error is in the log above"
        )
    answer = cast(Answer, doc)
    if "error" in answer:
        raise _error(answer)
    return answer


def _error(doc: Answer) -> RunwayError:
    kind = getattr(errors, str(doc.get("type")), None)
    if (
        isinstance(kind, type)
        and issubclass(kind, RunwayError)
        and not any("__init__" in vars(c) for c in kind.__mro__ if issubclass(c, RunwayError))
    ):  # made from a message alone
        return kind(str(doc["error"]))
    return ServeError(str(doc["error"]))


def main(argv: list[str] | None = None) -> int:
    """The child: settings on stdin, one JSON document on stdout."""
    parser = argparse.ArgumentParser(prog="python -m runway.serving.prepare")
    parser.add_argument("model")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage")
    which.add_argument("--version")
    parser.add_argument("--folder", type=Path, help="fetch and check the version into this folder")
    parser.add_argument("--unless", help="but not when the version resolved is this one")
    parser.add_argument("--log-level", type=int, default=logging.INFO)
    args = parser.parse_args(argv)
    answer = os.fdopen(os.dup(1), "w")  # the answer's channel; anything else printed is log
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(  # as the gateway's own lines (runway.cli)
        level=args.log_level, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S"
    )
    for name in ("alembic", "mlflow", "urllib3", "skops"):  # their INFO is noise here
        logging.getLogger(name).setLevel(max(args.log_level, logging.WARNING))
    settings = Settings.model_validate(json.loads(sys.stdin.read()))
    try:
        doc = _run(settings, args.model, args.stage, args.version, args.folder, args.unless)
    except RunwayError as exc:
        doc = Answer(error=str(exc), type=type(exc).__name__)
    except Exception as exc:  # a tracking server's 401, 403, silence: said, not a traceback
        from runway.store.http import explain

        known = explain(exc)
        if known is None:
            raise  # a bug: its traceback goes to the log, the gateway reports the exit
        doc = Answer(error=str(known), type=type(known).__name__)
    print(json.dumps(doc), file=answer, flush=True)
    return 0


def _run(
    settings: Settings,
    model: str,
    stage: str | None,
    version: str | None,
    folder: Path | None,
    unless: str | None = None,
) -> Answer:
    clock = [time.monotonic()]
    timeline: dict[str, float] = {}

    def mark(phase: str) -> None:
        clock.append(time.monotonic())
        timeline[phase] = clock[-1] - clock[-2]

    from runway.store import audit, registry, tracking, trust
    from runway.store.models import signature_inputs

    tracking.configure(settings)
    mark("MLflow import")
    audited = audit.resolve_audited(model, settings, stage, version)
    resolved = audited.model
    mark("resolve (audited)")
    doc = Answer(model=asdict(resolved))
    if audited.refused:
        doc["refused"] = f"{audited.refused}; serving v{resolved.version}; {audited.fix}"
    if folder is None or resolved.version == unless:
        return doc
    if not resolved.run_id:
        raise ServeError(
            f"{resolved.name} v{resolved.version} has no source run (no data contract)"
        )
    try:
        contract = tracking.load_contract(resolved.run_id)
        policy = registry.applied_input_policy(resolved.name, resolved.version)
        mark("contract and input policy")
        local = trust.fetch_verified(resolved, folder, settings)
        mark("download + verify")
    except RunwayError as exc:  # following: that version fails to start, not the registry
        if unless is None:
            raise
        return doc | Answer(failed=str(exc))
    return doc | Answer(
        contract=contract.to_json_dict(),
        policy=policy.model_dump(mode="json"),
        local=str(local),
        input_types=signature_inputs(local),
        timeline=timeline,
    )


if __name__ == "__main__":
    from runway.serving.children import leave

    code = main()
    logging.shutdown()
    leave(code)  # the answer is out; MLflow's and SQLAlchemy's teardown would only delay it
