"""The run folder: claimed before any work, locked while a run writes to it, never replaced without being asked, and
a stop requested by a signal (SIGTERM from a scheduler, Ctrl-C) turned into a saved state and a message.

What a run writes (Trainer, RunLogger, evaluations): ``config.yaml``, ``train.log`` / ``train.rank<N>.log``,
``history.json``, ``loss_terms.png``, ``metrics.png``, ``tensorboard/``, ``checkpoints/`` and ``eval_*`` folders.
Only those are removed by ``--overwrite``; anything else a user keeps in the folder is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hap3d.files import check_output_dir, display
from hap3d.utils import TMP_SUFFIX, Hap3dError

LOCK_FILE = ".hap3d.lock"
RUN_MARKERS = ("checkpoints/last.pt", "history.json", "train.log")  # any of these: the folder holds a run
RUN_ENTRIES = re.compile(
    r"config\.yaml|train(\.rank\d+)?\.log|history\.json|loss_terms\.png|metrics\.png|tensorboard|checkpoints"
    r"|eval_.*|quickstart\.json|overlays"
)


class RunExists(Hap3dError):
    """The run folder already holds a run and neither --resume nor --overwrite was given."""


class TrainingStopped(Hap3dError):
    """Training stopped on a signal after saving its state; exits with 128 + the signal number, as shells expect."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def describe_run(run_dir: Path) -> str | None:
    """'a run (3 epoch checkpoints)' when the folder holds a hap3d run, else None."""
    if not any((run_dir / m).exists() for m in RUN_MARKERS):
        return None
    epochs = len(list((run_dir / "checkpoints").glob("epoch_*.safetensors")))
    return f"a hap3d run ({epochs} epoch checkpoint{'s' if epochs != 1 else ''})"


def remove_run_files(run_dir: Path) -> list[str]:
    """Delete what a run wrote (RUN_ENTRIES) and nothing else; the names removed."""
    removed = []
    for entry in sorted(run_dir.iterdir()):
        if RUN_ENTRIES.fullmatch(entry.name):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry.name)
    return removed


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """The half-written files of a killed run (an atomic write's ``.NAME.XXXX.tmp``; up to a full training state
    each). Safe under the run's lock: no other process writes there."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        for tmp in folder.glob(f".*{TMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def claim_run_dir(run_dir: str | os.PathLike, resume: bool = False, overwrite: bool = False,
                  announce: Callable[[str], Any] = print) -> Iterator[Path]:
    """The run folder, checked and locked for the duration of the block (rank 0 only, under torchrun).

    A folder holding a run is continued with ``resume``, replaced with ``overwrite``, else refused; a
    ``config.yaml`` that is not from a run is never replaced; leftovers of a killed run are removed."""
    if resume and overwrite:
        raise Hap3dError("--resume continues the run and --overwrite replaces it: give one of them")
    path = check_output_dir(run_dir, "run directory")
    with open(path / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Hap3dError(f"another hap3d process is training in {display(path)} (it holds {LOCK_FILE}); wait "
                             "for it to finish or choose another --out") from None
        try:
            found = describe_run(path)
            if found and not (resume or overwrite):
                raise RunExists(f"{display(path)} already holds {found}; pass --resume to continue it, --overwrite "
                                "to replace it, or choose another --out")
            if not found and (path / "config.yaml").exists():
                raise Hap3dError(f"{display(path / 'config.yaml')} is not from a hap3d run and training writes its "
                                 "config there; move the file or choose another --out")
            if found and overwrite:
                announce(f"--overwrite: removed the previous run in {display(path)} "
                         f"({', '.join(remove_run_files(path))})")
            stale = remove_stale_temporaries(path)
            if stale:
                announce(f"removed {len(stale)} half-written file(s) left by a killed run in {display(path)}")
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class StopSignals:
    """SIGTERM and SIGINT while training: the first is noted, and the loop saves its state at the next step and
    stops (:class:`TrainingStopped`); outside the step loop (an evaluation, whose pending state is already saved)
    it stops at once. A second signal takes its default course. Only the main thread can install handlers: in
    other threads this does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferred = False  # True inside the step loop, which polls :meth:`pending`
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked twice: give up on saving
            self.__exit__()
            signal.raise_signal(signum)
            return
        self.signum = signum
        if not self.deferred:
            raise self.stopped("")

    def stopped(self, saved: str) -> TrainingStopped:
        name = signal.Signals(self.signum).name if self.signum else "a signal"
        return TrainingStopped(f"stopped by {name}{saved}", self.signum or signal.SIGTERM)
