"""Run logging on the main process: a plain-text log, TensorBoard scalars (when installed), a JSON history,
and PNG plots of the loss terms and per-epoch metrics, all inside the run directory."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from hap3d.utils import atomic_write


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool = True, history: dict | None = None) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.history = history or {"steps": [], "epochs": []}
        self.log = logging.getLogger("hap3d.train")
        self._tb = None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(run_dir / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%m-%d %H:%M:%S"))
            self.log.addHandler(handler)
            self.log.setLevel(logging.INFO)
            self._handler = handler
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                self.log.info("tensorboard not installed: scalars go to history.json and plots only")

    def info(self, msg: str) -> None:
        if self.enabled:
            self.log.info(msg)

    def step(self, global_step: int, epoch: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.history["steps"].append({"step": global_step, "epoch": epoch, "time": time.time(), **scalars})
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"train/{k}", v, global_step)

    def epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.history["epochs"].append({"epoch": epoch, **scalars})
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
        if self.enabled:
            self.log.removeHandler(self._handler)
            self._handler.close()
