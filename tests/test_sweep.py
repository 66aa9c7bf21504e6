"""`hap3d eval --sweep RUN_DIR`: every epoch checkpoint into one table and plot; an interrupted sweep resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

import hap3d.engine.run as engine_run
from hap3d.cli import main as cli_main
from hap3d.config import load_config, to_dict, with_absolute_paths
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint

from train_script import TINY


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, body_dir) -> Path:
    """A run directory as `hap3d train` leaves it: config.yaml and three epoch checkpoints (different weights)."""
    from hap3d.synth import write_synthetic_datasets

    base = tmp_path_factory.mktemp("sweep")
    root = Path(write_synthetic_datasets(base / "data", body_dir, size="tiny", datasets=["PW3D"]))
    cfg = load_config(None, TINY + [f"data.root={root}", f"data.body_model_dir={body_dir}", "eval.test_batch_size=4"])
    run = base / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(with_absolute_paths(cfg)), sort_keys=False))
    for epoch in range(3):
        torch.manual_seed(epoch)
        save_model_checkpoint(run / "checkpoints" / f"epoch_{epoch}.safetensors", build_model(cfg.model, body_dir),
                              cfg.model)
    (run / "checkpoints" / "last.pt").write_bytes(b"not swept")
    return run


def _table(out: Path) -> list[dict]:
    return list(csv.DictReader(open(out / "sweep.csv")))


def test_sweep_evaluates_every_epoch_and_an_interrupted_sweep_resumes(run_dir, tmp_path, monkeypatch, capsys):
    calls: list[str] = []
    evaluate = engine_run.evaluate
    kill = {"at": "epoch_1.safetensors"}

    def killed_at_the_second(cfg, ckpt, out, **kw):
        calls.append(Path(ckpt).name)
        if Path(ckpt).name == kill.get("at"):
            kill.clear()
            raise KeyboardInterrupt  # stopped in the middle of epoch_1's evaluation
        return evaluate(cfg, ckpt, out, **kw)

    monkeypatch.setattr(engine_run, "evaluate", killed_at_the_second)
    assert cli_main(["eval", "--sweep", str(run_dir), "data.num_workers=0"]) != 0  # "hap3d: interrupted"
    out = run_dir / "sweep"
    assert (out / "epoch_0" / "eval.json").is_file() and not (out / "sweep.csv").exists()
    calls.clear()
    assert cli_main(["eval", "--sweep", str(run_dir), "data.num_workers=0"]) == 0
    assert calls == ["epoch_1.safetensors", "epoch_2.safetensors"], "epoch_0 is not evaluated again"
    printed = capsys.readouterr().out
    assert f"sweep: epoch_0 already evaluated in {out / 'epoch_0'}" in printed and "<- lowest MPJPE" in printed
    rows = _table(out)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same numbers as an uninterrupted sweep, and as each epoch's own evaluation
    monkeypatch.setattr(engine_run, "evaluate", evaluate)
    assert cli_main(["eval", "--sweep", str(run_dir), "--out", str(tmp_path / "once"), "data.num_workers=0"]) == 0
    once = _table(tmp_path / "once")
    assert [(r["epoch"], r["mpjpe"], r["pa_mpjpe"], r["mpvpe"]) for r in rows] == \
           [(r["epoch"], r["mpjpe"], r["pa_mpjpe"], r["mpvpe"]) for r in once]
    table = json.loads((out / "sweep.json").read_text())
    for r in table:
        own = json.loads((out / f"epoch_{r['epoch']}" / "eval.json").read_text())
        assert r["mpjpe"] == own["means_mm"]["mpjpe"] and r["num_samples"] == own["num_samples"]
    assert len({r["mpjpe"] for r in table}) == 3, "three different models"


def test_sweep_without_epoch_checkpoints_names_the_folder(tmp_path, capsys):
    assert cli_main(["eval", "--sweep", str(tmp_path)]) == 2
    assert f"no epoch_N.safetensors checkpoints in {tmp_path.resolve() / 'checkpoints'}" in capsys.readouterr().err
    assert cli_main(["eval", "--sweep", str(tmp_path), "--testset", "Human36M"]) == 2
    assert "--sweep evaluates 3DPW" in capsys.readouterr().err


def test_an_unreadable_checkpoint_is_skipped_and_the_others_evaluated(run_dir, tmp_path, capsys):
    """A truncated epoch file (a full disk, a copy cut short) costs its own row, not the sweep: exit code 1."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("sweep*"))
    broken = run / "checkpoints" / "epoch_1.safetensors"
    broken.write_bytes(broken.read_bytes()[:1000])
    assert cli_main(["eval", "--sweep", str(run), "data.num_workers=0"]) == 1
    printed = capsys.readouterr().out
    assert f"sweep: skipping epoch_1: {broken}" in printed and f"    1 skipped: {broken}" in printed
    assert "1 of 3 checkpoints could not be read" in printed
    assert [r["epoch"] for r in _table(run / "sweep")] == ["0", "2"]
    for name in ("epoch_0", "epoch_1", "epoch_2"):  # every checkpoint unreadable: one error, exit code 2
        (run / "checkpoints" / f"{name}.safetensors").write_bytes(b"")
    assert cli_main(["eval", "--sweep", str(run), "--out", str(tmp_path / "none"), "data.num_workers=0"]) == 2
    assert "no checkpoint of the sweep could be read" in capsys.readouterr().err
