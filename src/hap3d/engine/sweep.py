"""``hap3d eval --sweep RUN_DIR``: every ``epoch_N`` checkpoint of a run, evaluated into one table and one plot.

Each epoch's evaluation is written (atomically) to ``<out>/epoch_N/eval.json`` before the next one starts, and an
epoch whose file is already there is read instead of evaluated, so a killed sweep continues where it stopped. A
checkpoint that cannot be read (e.g. truncated by a full disk) is reported and skipped; the others are still
evaluated. The
table (``sweep.csv``, ``sweep.json``) and plot (``sweep.png``) are rebuilt from those files at the end. Sweep the
validation split (``validation=True``, ``data.valset``) to choose an epoch; sweeping the test set and keeping the
best selects the model on the test data (docs/reference-differences.md R48).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hap3d.config import Config
from hap3d.engine.evaluate import write_csv
from hap3d.model.checkpoint import CheckpointError
from hap3d.utils import Hap3dError, atomic_write

EPOCH_FILE = re.compile(r"epoch_(\d+)\.safetensors")
COLUMNS = ("mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe")


@dataclass
class SweepRow:
    epoch: int
    checkpoint: Path
    metrics: dict | None  # the epoch's eval.json; None when the checkpoint could not be read
    reused: bool  # read from an earlier (interrupted) sweep instead of evaluated now
    error: str | None = None  # why the checkpoint was skipped


def epoch_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``<run>/checkpoints/epoch_N.safetensors``, by epoch; an error naming the folder when
    there is none."""
    folder = Path(run_dir).resolve() / "checkpoints"  # absolute: eval.json names its checkpoint so
    found = sorted((int(m.group(1)), p) for p in folder.glob("epoch_*.safetensors")
                   if (m := EPOCH_FILE.fullmatch(p.name)))
    if not found:
        raise Hap3dError(f"no epoch_N.safetensors checkpoints in {folder}: --sweep takes a run directory of `hap3d "
                         "train` (RUN_DIR with checkpoints/epoch_0.safetensors, ...)")
    return found


def sweep_out_dir(run_dir: str | Path, validation: bool, crowd: bool) -> Path:
    """``<run>/sweep``, ``sweep_val`` or ``sweep_crowd``: one folder per evaluated set."""
    return Path(run_dir) / f"sweep{'_val' if validation else '_crowd' if crowd else ''}"


def _done(folder: Path, ckpt: Path) -> dict | None:
    """The epoch's finished evaluation of this checkpoint, if an earlier sweep wrote it."""
    path = folder / "eval.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: evaluated again
    return metrics if metrics.get("checkpoint") == str(ckpt) else None


def run_sweep(
    cfg: Config, run_dir: str | Path, out: str | Path, evaluate: Callable[..., object], validation: bool = False,
    write: bool = True, report: Callable[[str], None] = print,
) -> list[SweepRow]:
    """Evaluate each epoch checkpoint not yet evaluated under ``out`` (``evaluate(cfg, ckpt, folder, validation=)``,
    :func:`hap3d.engine.run.evaluate`), then write the table and plot (``write``: rank 0 under torchrun, where every
    process runs the sweep and evaluates its share of each epoch)."""
    out = Path(out)
    rows = []
    checkpoints = epoch_checkpoints(run_dir)
    for epoch, ckpt in checkpoints:
        folder = out / f"epoch_{epoch}"
        metrics = _done(folder, ckpt)
        reused = metrics is not None
        if metrics is None:
            report(f"sweep: evaluating epoch_{epoch} ({len(rows) + 1}/{len(checkpoints)})")
            try:
                evaluate(cfg, ckpt, folder, validation=validation)
            except CheckpointError as err:  # this file only: the other epochs are still worth evaluating
                report(f"sweep: skipping epoch_{epoch}: {err}")
                rows.append(SweepRow(epoch, ckpt, None, False, str(err)))
                continue
            metrics = json.loads((folder / "eval.json").read_text())
        else:
            report(f"sweep: epoch_{epoch} already evaluated in {folder}")
        rows.append(SweepRow(epoch, ckpt, metrics, reused))
    if not any(r.metrics for r in rows):
        raise Hap3dError("no checkpoint of the sweep could be read: " + "; ".join(r.error or "" for r in rows))
    if write:
        write_table(rows, out)
    return rows


def table_rows(rows: list[SweepRow]) -> list[dict]:
    """One row per evaluated epoch (skipped checkpoints have none)."""
    return [{"epoch": r.epoch, **{k: r.metrics["means_mm"][k] for k in COLUMNS}, "pck150": r.metrics["pck150"],
             "auc": r.metrics["auc"], "num_samples": r.metrics["num_samples"], "checkpoint": str(r.checkpoint)}
            for r in rows if r.metrics]


def write_table(rows: list[SweepRow], out: Path) -> None:
    """sweep.json, sweep.csv (one row per epoch) and sweep.png (the mm metrics against the epoch)."""
    table = table_rows(rows)
    header = list(table[0])
    atomic_write(out / "sweep.json", lambda p: Path(p).write_text(json.dumps(table, indent=1)))
    write_csv(out / "sweep.csv", header, [[f"{v:.4f}" if isinstance(v, float) else v for v in t.values()]
                                          for t in table])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for k in COLUMNS:
        ax.plot([t["epoch"] for t in table], [t[k] for t in table], marker="o", label=k)
    ax.set_xlabel("epoch (epoch_N file)")
    ax.set_ylabel("mm")
    ax.legend(fontsize=7)
    ax.set_title(next(r.metrics for r in rows if r.metrics).get("evaluated_on") or "test set")
    fig.tight_layout()
    atomic_write(out / "sweep.png", lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def format_table(rows: list[SweepRow]) -> str:
    """The sweep as an aligned text table (mm), the best MPJPE marked, then the skipped checkpoints."""
    table = table_rows(rows)
    best = min(table, key=lambda t: t["mpjpe"])["epoch"]
    lines = [f"{'epoch':>5} " + " ".join(f"{k:>9}" for k in COLUMNS) + f" {'samples':>8}"]
    lines += [f"{t['epoch']:>5} " + " ".join(f"{t[k]:>9.2f}" for k in COLUMNS) + f" {t['num_samples']:>8}"
              + ("  <- lowest MPJPE" if t["epoch"] == best else "") for t in table]
    lines += [f"{r.epoch:>5} skipped: {r.error}" for r in rows if r.error]
    return "\n".join(lines)
