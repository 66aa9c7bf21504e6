"""The quickstart at its smallest budget: procedural body + synthetic data -> train -> eval -> overlays; reruns."""

import json
import re
from pathlib import Path

import pytest

from hap3d.cli import main as cli_main

pytestmark = pytest.mark.slow


def _steps_logged(log: Path) -> int:
    return len(re.findall(r"\(global \d+\): loss", log.read_text()))


def _qs(out: Path, *extra: str) -> int:
    return cli_main(["quickstart", "--out", str(out), "--budget", "tiny", "--device", "cpu", *extra])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qs") / "qs"
    assert _qs(out) == 0
    return out


def test_quickstart_tiny_budget_learns(tiny_run):
    run = tiny_run / "run"
    summary = json.loads((run / "quickstart.json").read_text())
    assert summary["trained_mm"]["mpjpe"] < 0.7 * summary["untrained_mm"]["mpjpe"]
    for name in ("history.json", "loss_terms.png", "metrics.png", "train.log", "eval_final.json",
                 "eval_final_per_sample.csv",
                 "checkpoints/last.pt", "checkpoints/epoch_0.safetensors"):
        assert (run / name).is_file(), name
    assert summary["overlays"] and all(Path(p).is_file() for p in summary["overlays"])
    assert (tiny_run / "data" / "PW3D" / "data" / "3DPW_latest_test.json").is_file()


def test_evaluation_after_training_equals_evaluating_the_saved_checkpoint(tiny_run, tmp_path):
    """The run's final evaluation (same process, after the untrained one and the training steps) scores the weights
    it saved. An earlier build evaluated stale packed weights after fused optimizer steps (tests/test_runtime.py)."""
    run = tiny_run / "run"
    last = max(run.glob("checkpoints/epoch_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
    out = tmp_path / "eval"
    assert cli_main(["eval", "--ckpt", str(last), "--out", str(out), "eval.amp=none"]) == 0
    final = json.loads((run / "eval_final.json").read_text())["means_mm"]
    again = json.loads((out / "eval.json").read_text())["means_mm"]
    assert final.keys() == again.keys()
    for k in final:
        assert again[k] == pytest.approx(final[k], abs=0.01), k


def test_rerun_resumes_or_overwrites_on_request_and_refuses_another_budget(tiny_run, capsys):
    log = tiny_run / "run" / "train.log"
    step_lines = _steps_logged(log)
    capsys.readouterr()
    # another budget: said plainly, before any work
    assert cli_main(["quickstart", "--out", str(tiny_run), "--budget", "small", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{tiny_run} holds a quickstart of budget 'tiny'" in err and "--budget tiny" in err
    # --resume continues the finished run: nothing is trained again
    assert _qs(tiny_run, "--resume") == 0
    assert "resumed from" in log.read_text() and _steps_logged(log) == step_lines
    # a plain rerun never replaces the finished run: an error naming the folder and both ways on, before any work
    (tiny_run / "run" / "notes.txt").write_text("mine")
    before = {p: p.stat().st_mtime_ns for p in (tiny_run / "run").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert _qs(tiny_run) == 2
    err = capsys.readouterr().err
    assert f"{tiny_run / 'run'} already holds a hap3d run" in err and "--resume" in err and "--overwrite" in err
    assert {p: p.stat().st_mtime_ns for p in (tiny_run / "run").rglob("*") if p.is_file()} == before
    # --overwrite starts again from nothing, and leaves the user's own file alone
    assert _qs(tiny_run, "--overwrite") == 0
    assert "--overwrite: removed the previous run" in capsys.readouterr().out
    assert (tiny_run / "run" / "notes.txt").read_text() == "mine"
    text = log.read_text()
    assert "resumed from" not in text and text.count("finished 2 epochs") == 1 and _steps_logged(log) == step_lines


@pytest.mark.parametrize("text, problem", [
    ("{not json", "JSONDecodeError"), ('{"size": "tiny"}', "KeyError: 'budget'"), ('["tiny"]', "TypeError"),
    ('{"budget": "huge"}', "ValueError: unknown budget 'huge'"),
])
def test_malformed_budget_file_is_a_clear_error(tmp_path, capsys, text, problem):
    out = tmp_path / "qs"
    out.mkdir()
    (out / "budget.json").write_text(text)
    assert _qs(out) == 2
    err = capsys.readouterr().err
    assert f"{out / 'budget.json'} is malformed ({problem}" in err and "Choose a fresh --out" in err, err
