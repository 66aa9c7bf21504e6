"""The quickstart at its smallest budget: procedural body + synthetic data -> train -> eval -> overlays."""

import json

import pytest

from hap3d.cli import main as cli_main

pytestmark = pytest.mark.slow


def test_quickstart_tiny_budget_learns(tmp_path):
    out = tmp_path / "qs"
    assert cli_main(["quickstart", "--out", str(out), "--budget", "tiny", "--device", "cpu"]) == 0
    run = out / "run"
    summary = json.loads((run / "quickstart.json").read_text())
    assert summary["trained_mm"]["mpjpe"] < 0.7 * summary["untrained_mm"]["mpjpe"]
    for name in ("history.json", "loss_terms.png", "metrics.png", "train.log", "eval_final.json", "eval_final_per_sample.csv",
                 "checkpoints/last.pt", "checkpoints/epoch_0.safetensors"):
        assert (run / name).is_file(), name
    assert summary["overlays"] and all((tmp_path / p).is_file() or __import__("pathlib").Path(p).is_file() for p in summary["overlays"])
    assert (out / "data" / "PW3D" / "data" / "3DPW_latest_test.json").is_file()
