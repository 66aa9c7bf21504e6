"""Run logging: a plain-text log, TensorBoard scalars (when installed), a JSON history, and PNG plots of the loss
terms and per-epoch metrics, all inside the run directory.

The text log's handler sits on the package logger ``hap3d``, so warnings of every module (e.g. the data
loader's skipped images) land in it too. Rank 0 writes ``train.log``; another rank writes
``train.rank<N>.log``, created only if it has a warning to report (only rank 0 keeps the history and plots).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from hap3d.utils import atomic_write

FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%m-%d %H:%M:%S")


def attach_file_handler(path: Path, level: int) -> logging.Handler:
    """A handler writing the ``hap3d`` package's records of ``level`` and above to ``path`` (reused if present).

    DataLoader workers call this too: forked ones inherit the handler, spawned ones need their own.
    """
    package = logging.getLogger("hap3d")
    for h in package.handlers:  # FileHandler keeps os.path.abspath of its file: compare that form ('..' resolved)
        if isinstance(h, logging.FileHandler) and h.baseFilename == os.path.abspath(path):
            return h
    handler = logging.FileHandler(path, delay=True)  # a rank with nothing to report leaves no file
    handler.setFormatter(FORMAT)
    handler.setLevel(level)
    package.addHandler(handler)
    if package.getEffectiveLevel() > level:
        package.setLevel(level)
    return handler


def run_log_file(run_dir: Path, rank: int) -> tuple[Path, int]:
    """The text log of process ``rank`` in ``run_dir`` and the lowest level it records."""
    if rank == 0:
        return run_dir / "train.log", logging.INFO
    return run_dir / f"train.rank{rank}.log", logging.WARNING


@contextlib.contextmanager
def run_log(run_dir: Path, rank: int) -> Iterator[None]:
    """The ``hap3d`` package's records go to the run's text log while inside: the readers' load-time warnings and
    tallies come before the Trainer's :class:`RunLogger` exists (which then reuses this handler)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    package = logging.getLogger("hap3d")
    level_before = package.level
    handler = attach_file_handler(*run_log_file(run_dir, rank))
    try:
        yield
    finally:
        package.removeHandler(handler)
        handler.close()
        package.setLevel(level_before)


class RunLogger:
    def __init__(self, run_dir: Path, rank: int = 0, history: dict | None = None) -> None:
        self.run_dir = run_dir
        self.enabled = rank == 0  # history, TensorBoard, plots and info lines
        self.history = history or {"steps": [], "epochs": []}
        self.log = logging.getLogger("hap3d.train")
        self._tb = None
        run_dir.mkdir(parents=True, exist_ok=True)
        self.file, self.level = run_log_file(run_dir, rank)
        self._package_level = logging.getLogger("hap3d").level
        self._handler = attach_file_handler(self.file, self.level)

    def open_tensorboard(self, purge_step: int | None) -> None:
        """Start the TensorBoard writer; ``purge_step`` drops events a resumed run logs again (steps >= it)."""
        if not self.enabled or self._tb is not None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.log.info("tensorboard not installed: scalars go to history.json and plots only")
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)

    def info(self, msg: str) -> None:
        if self.enabled:
            self.log.info(msg)

    def warning(self, msg: str) -> None:
        self.log.warning(msg)

    def warn_user(self, msg: str) -> None:
        """A warning in the text log and on stderr: one the person watching the run should see now."""
        self.log.warning(msg)
        print(f"warning: {msg}", file=sys.stderr)

    def step(self, global_step: int, epoch: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.history["steps"].append({"step": global_step, "epoch": epoch, "time": time.time(), **scalars})
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"train/{k}", v, global_step)

    def epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        """Add ``scalars`` to the epoch's history entry (training stats first, evaluation metrics later)."""
        if not self.enabled:
            return
        entry = next((e for e in self.history["epochs"] if e["epoch"] == epoch), None)
        if entry is None:
            entry = {"epoch": epoch}
            self.history["epochs"].append(entry)
        entry.update(scalars)
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"epoch/{k}", v, epoch)
            self._tb.flush()
        self.save()

    def save(self) -> None:
        atomic_write(self.run_dir / "history.json", lambda p: Path(p).write_text(json.dumps(self.history, indent=1)))
        self.plot()

    def plot(self) -> None:
        """loss_terms.png (every logged step) and metrics.png (per epoch)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = self.history["steps"]
        if steps:
            keys = [k for k in steps[0] if k.startswith("loss")]
            fig, ax = plt.subplots(figsize=(8, 4.5))
            for k in keys:
                ax.plot([s["step"] for s in steps], [s.get(k, float("nan")) for s in steps], label=k)
            ax.set_xlabel("step")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
            ax.set_title("training losses")
            fig.tight_layout()
            fig.savefig(self.run_dir / "loss_terms.png", dpi=100)
            plt.close(fig)
        epochs = [e for e in self.history["epochs"] if any(k.startswith("eval_") for k in e)]
        if epochs:
            keys = [k for k in epochs[0] if k.startswith("eval_")]
            fig, ax = plt.subplots(figsize=(6, 4))
            for k in keys:
                ax.plot([e["epoch"] for e in epochs], [e.get(k, float("nan")) for e in epochs], marker="o", label=k)
            ax.set_xlabel("epoch")
            ax.set_ylabel("mm")
            ax.legend(fontsize=7)
            ax.set_title("evaluation")
            fig.tight_layout()
            fig.savefig(self.run_dir / "metrics.png", dpi=100)
            plt.close(fig)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        package = logging.getLogger("hap3d")
        package.removeHandler(self._handler)
        self._handler.close()
        package.setLevel(self._package_level)
