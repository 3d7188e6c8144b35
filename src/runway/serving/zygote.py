"""One interpreter for a version's backends: load the model once, fork each backend.

Started by :func:`runway.serving.backends.spawn_group` as
``python -m runway.serving.zygote runway.store.scoring_app:app --fds 5,6 --logs a,b
--gateway PID``, with the scoring server's environment (the request timeout,
the thread pins). It imports MLflow's scoring server (and, given ``--preload``,
the model's flavor) while the version is fetched (at a cold start by the prepare
child it forks once MLflow is imported: :mod:`runway.serving.forked`), then reads
the model folder (the one
:func:`runway.store.trust.fetch_verified` checked) from stdin, imports the
model's loader module and MLflow's scoring app, which loads the model and
builds the app, exactly as in ``mlflow models serve``. It then forks one child
per listening socket and exits; the gateway, a child subreaper, adopts the
children. So the backends share the imported modules and the loaded model (a
forest's graph is held once, not once per backend) and none loads it again.

A fork copies only the thread that calls it, so a pool of threads the load
started (onnxruntime with ``RUNWAY_ONNX_THREADS`` above 1, say) would be missing
in every child. Loading runway's flavors with the default pins starts none;
if a load does, the zygote re-executes itself with ``--no-model`` and each
child loads the model for itself, as MLflow's app does on import.

Each child closes every socket but its own (a dead sibling's socket must refuse
connections, not queue them), takes its own process group and its own log,
ties its life to the gateway's (``PR_SET_PDEATHSIG`` once adopted), and runs
``uvicorn`` on MLflow's scoring app: MLflow's own server scores. What the shared
pages save is measured by ``make bench`` (the README's serving table).

The zygote ties its own life to the gateway's first thing (``PR_SET_PDEATHSIG``,
then a check that the gateway is still its parent), rather than in a
``preexec_fn``: that would run ctypes between fork and exec in the gateway, a
threaded process, which Python warns may deadlock.

Both sides of the protocol live here: :func:`main` runs in the zygote,
:func:`spawn`, :func:`finish`, :func:`reported` and :class:`Adopted` in the
gateway (:class:`runway.serving.backends.Pending`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runway.serving.children import die_with, leave
from runway.store.served import SCORING_MODEL_ENV

ADOPTION_WAIT = 10.0  # seconds a child waits for the gateway to adopt it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runway.serving.zygote")
    parser.add_argument("app", help="the ASGI app uvicorn runs (MLflow's scoring app)")
    parser.add_argument("--fds", required=True, help="listening socket fds, comma-separated")
    parser.add_argument("--logs", required=True, help="one log file per fd, comma-separated")
    parser.add_argument("--gateway", type=int, required=True, help="the pid that adopts them")
    parser.add_argument("--no-model", action="store_true", help="each child loads the model")
    parser.add_argument("--model-dir", help="the model folder (default: a line on stdin, later)")
    parser.add_argument("--preload", help="the loader module the version likely has (a hint)")
    parser.add_argument("--prepare", help="fork the prepare child (runway.serving.forked)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not die_with(args.gateway):
        return 1
    fds = [int(fd) for fd in args.fds.split(",")]
    logs = args.logs.split(",")
    if len(fds) != len(logs):
        parser.error("--fds and --logs differ in length")

    from runway.store.models import import_loader, import_scoring_server  # MLflow: seconds

    child = None  # the first version's prepare child: MLflow imported once for both
    if args.prepare and not args.model_dir:  # (not again when re-executed)
        from runway.serving import forked

        child = forked.fork(args.prepare, fds)
    import_scoring_server()  # while the gateway still fetches the model: it needs none
    import uvicorn  # noqa: F401  (imported before the fork: shared, not once per child)

    preload(args.preload)  # its libraries too, while the version is still being checked

    model_dir = args.model_dir or sys.stdin.readline().strip()
    if child is not None:  # it answered before the gateway sent the folder
        forked.reap(child, stop=not model_dir)
    if not model_dir:  # the gateway gave up on this version (its fetch failed)
        return 1
    os.environ[SCORING_MODEL_ENV] = model_dir  # the folder MLflow's app loads
    import_loader(Path(model_dir))
    if not args.no_model:
        before = _threads()
        importlib.import_module(args.app.partition(":")[0])  # MLflow's app: loads the model
        started = _threads() - before
        if started > 0:  # a fork would leave them behind: start over, load in each child
            print(
                f"zygote: loading the model started {started} thread(s); each backend loads it",
                file=sys.stderr,  # stdout is the gateway's: pids and "done" only
                flush=True,
            )
            again = [*(argv or sys.argv[1:]), "--model-dir", model_dir, "--no-model"]
            again = ["-m", "runway.serving.zygote", *again]
            os.execv(sys.executable, [sys.executable, *again])

    gc.collect()
    gc.freeze()  # imported objects stay out of the collector: their pages stay shared
    with contextlib.suppress(OSError, AttributeError):
        # What loading freed goes back to the OS rather than into every child
        # (an onnxruntime session's build leaves tens of MB of such heap behind).
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    sys.stdout.flush()
    zygote = os.getpid()
    for fd, log in zip(fds, logs, strict=True):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os._exit(_child(args.app, fd, [f for f in fds if f != fd], log, zygote, args.gateway))
        with contextlib.suppress(OSError):  # both sides set it: a stop never finds no group
            os.setpgid(pid, pid)
        print(json.dumps({"pid": pid}), flush=True)  # at once: the gateway stops what it hears of
    print(json.dumps({"done": len(fds)}), flush=True)
    return 0


def preload(loader: str | None) -> None:
    """Import a known flavor's loader and the libraries it loads a model with (seconds:
    scikit-learn), before the version's folder is here; an unknown name imports nothing.
    Library code only: the model itself loads once its folder is checked."""
    from runway.store.models import PRELOAD

    if loader in PRELOAD:
        for module in (loader, *PRELOAD[loader]):
            importlib.import_module(module)


def _threads() -> int:
    """This process's threads (native ones included: a fork copies only the caller)."""
    return len(os.listdir("/proc/self/task"))


def _child(app: str, fd: int, others: list[int], log: str, zygote: int, gateway: int) -> int:
    """Become one backend: its socket, its group, its log; then MLflow's scoring app."""
    for other in others:
        with contextlib.suppress(OSError):
            os.close(other)
    os.setpgid(0, 0)  # stopped as a group, like a spawned backend
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    deadline = time.monotonic() + ADOPTION_WAIT
    while os.getppid() == zygote and time.monotonic() < deadline:
        time.sleep(0.002)  # the zygote exits right after forking
    if not die_with(gateway):  # the gateway died meanwhile, or did not adopt us
        print(f"backend {os.getpid()}: not adopted by the gateway (pid {gateway}); exiting")
        return 1
    import uvicorn

    uvicorn.run(
        app,
        fd=fd,
        workers=1,
        access_log=False,  # the gateway counts requests; a line per request costs CPU
        timeout_keep_alive=60,  # longer than the gateway keeps an idle pooled connection
    )
    return 0


def spawn(command: list[str], env: dict[str, str], fds: list[int], log: Path) -> subprocess.Popen:
    """In the gateway: start a zygote; it imports MLflow's scoring server, then waits for
    :func:`finish` to name the model folder."""
    with open(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as err:
        return subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.PIPE,
            env=env,
            pass_fds=fds,
            process_group=0,  # no preexec_fn: the zygote ties itself to us (die_with)
        )


def finish(zygote: subprocess.Popen, model_dir: Path | None, timeout: float) -> tuple[bytes, int]:
    """In the gateway: hand a zygote its model folder and run it to its exit.

    Returns what it printed and its exit code. With no folder it exits at once.

    Raises:
        subprocess.TimeoutExpired: it did not finish within ``timeout`` (it is killed).
    """
    line = f"{model_dir}\n" if model_dir is not None else "\n"
    try:
        out, _ = zygote.communicate(line.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(zygote.pid, signal.SIGKILL)
        zygote.wait()
        raise
    return out, zygote.returncode


def reported(out: bytes) -> tuple[list[int], bool]:
    """The pids a zygote reported, one JSON line each, and whether it reported them all."""
    pids, done = [], False
    for line in out.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("pid"), int):
            pids.append(message["pid"])
        done = done or (isinstance(message, dict) and "done" in message)
    return pids, done


class Adopted:
    """In the gateway: a backend a zygote forked and the gateway adopted (what runway uses of
    ``Popen``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once it has exited (reaping it), else None."""
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # not ours to reap (no subreaper on this OS): ask the kernel
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1
            except PermissionError:  # pragma: no cover - the pid was reused by another user
                self.returncode = -1
            return self.returncode
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to exit; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"backend {self.pid}", timeout or 0)
            time.sleep(0.02)
        return code


if __name__ == "__main__":
    leave(main())
