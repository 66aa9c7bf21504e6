"""`hap3d eval` end to end on golden case D: data root in the 3DPW layout, our checkpoint of the golden weights."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import yaml

from hap3d.cli import eval_out_dir
from hap3d.cli import main as cli_main
from hap3d.config import Config, DataConfig, TrainConfig, to_dict, with_absolute_paths
from hap3d.engine.distributed import DistInfo
from hap3d.engine.train import Trainer
from hap3d.model.checkpoint import save_model_checkpoint

from golden import golden_dir, golden_model, npz
from train_script import RandomSamples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcli")
    (root / "data" / "PW3D").mkdir(parents=True)
    (root / "data" / "PW3D" / "data").symlink_to(golden_dir() / "case_d_pw3d")
    body = root / "body"
    (body / "smpl").mkdir(parents=True)
    for g in ("neutral", "male", "female"):
        (body / "smpl" / f"smpl_{g}.npz").symlink_to(golden_dir() / "body" / f"smpl_{g}.npz")
    for k, v in npz("body/regressors.npz").items():
        np.save(body / f"{k}.npy", v)
    model = golden_model()
    ckpt = save_model_checkpoint(root / "golden.safetensors", model, model.cfg)
    return root, body, ckpt


def _eval(root, body, ckpt, out) -> dict:
    # overrides before, between and after the options
    code = cli_main(["eval", "eval.test_batch_size=2", "--ckpt", str(ckpt), "--data-root", str(root / "data"),
                     "data.num_workers=0", "--body-model-dir", str(body), "--out", str(out), "eval.amp=none"])
    assert code == 0
    return _check_metrics(out)


def _check_metrics(out) -> dict:
    got = json.loads((out / "eval.json").read_text())
    ref = json.loads((golden_dir() / "case_d.json").read_text())["metric_model"]
    for m in ("mpjpe", "pa_mpjpe", "mpvpe"):
        assert got["means_mm"][m] == pytest.approx(ref[m]["mean"], rel=1e-4)
    return got


def _fixture_sequence_counts() -> dict[str, int]:
    """Person-frames per sequence, from the fixture's own 3DPW annotation file (evaluated people are its aids)."""
    ann = json.loads((golden_dir() / "case_d_pw3d" / "3DPW_latest_test.json").read_text())
    seq_of_image = {im["id"]: im["sequence"] for im in ann["images"]}
    aids = set(json.loads((golden_dir() / "case_d.json").read_text())["aids"])
    counts: dict[str, int] = {}
    for a in ann["annotations"]:
        if a["id"] in aids:
            counts[seq_of_image[a["image_id"]]] = counts.get(seq_of_image[a["image_id"]], 0) + 1
    return counts


def test_eval_command_reproduces_reference_metrics(setup, capsys):
    root, body, ckpt = setup
    out = root / "eval_out"
    got = _eval(root, body, ckpt, out)
    ref = json.loads((golden_dir() / "case_d.json").read_text())["metric_model"]
    assert got["num_samples"] == len(ref["mpjpe"]["per_sample"])
    assert got["amp"] == "none" and got["runtime"] in ("eager", "fast"), "eval.json records how the network ran"
    assert {k: v["count"] for k, v in got["per_sequence"].items()} == _fixture_sequence_counts()
    rows = list(csv.DictReader(open(out / "eval_per_sample.csv")))
    for row, want in zip(rows, ref["mpjpe"]["per_sample"]):
        assert float(row["mpjpe"]) == pytest.approx(want, rel=1e-4)
    # per-sequence results: a CSV beside the JSON, and the table printed at the end
    seq_rows = {r["sequence"]: r for r in csv.DictReader(open(out / "eval_per_sequence.csv"))}
    assert set(seq_rows) == set(got["per_sequence"])
    printed = capsys.readouterr().out
    for name, stats in got["per_sequence"].items():
        assert int(seq_rows[name]["count"]) == stats["count"]
        assert float(seq_rows[name]["mpjpe"]) == pytest.approx(stats["mpjpe"], abs=1e-4)
        assert re.search(rf"^{name} +{stats['count']} +{stats['mpjpe']:.2f} ", printed, re.M), printed
    assert re.search(rf"^all +{got['num_samples']} +{got['means_mm']['mpjpe']:.2f} ", printed, re.M)


def test_eval_command_takes_a_training_state(setup, tmp_path):
    """`hap3d eval --ckpt <run>/checkpoints/last.pt` evaluates the weights inside the training state."""
    root, body, _ = setup
    model = golden_model()
    cfg = Config(model=model.cfg, data=DataConfig(num_workers=0), train=TrainConfig(train_batch_size=2))
    trainer = Trainer(cfg, model, RandomSamples(2), tmp_path / "run", DistInfo(), progress=False)
    trainer.save_state()
    trainer.logger.close()
    _eval(root, body, trainer.state_path, tmp_path / "eval_out")


def test_eval_command_reports_missing_data_clearly(setup, capsys):
    root, body, ckpt = setup
    code = cli_main(["eval", "--ckpt", str(ckpt), "--data-root", str(root / "nowhere"), "--body-model-dir", str(body)])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and str(root / "nowhere") in err, err


def test_eval_of_a_run_checkpoint_uses_the_run_config_and_its_own_folder(setup, tmp_path, monkeypatch, capsys):
    """`hap3d eval --ckpt <run>/checkpoints/epoch_N.safetensors` without path flags, from another directory: the run's
    config.yaml supplies the data root and body model; results go to a folder named after the checkpoint."""
    root, body, ckpt = setup
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, run / "checkpoints" / "epoch_24.safetensors")
    cfg = Config(data=DataConfig(root=str(root / "data"), body_model_dir=str(body), num_workers=0))
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(with_absolute_paths(cfg)), sort_keys=False))
    monkeypatch.chdir(tmp_path)  # nothing named data/ or body_models/ here
    assert cli_main(["eval", "--ckpt", "run/checkpoints/epoch_24.safetensors", "eval.test_batch_size=2"]) == 0
    out = run / "checkpoints" / "eval_epoch_24"
    _check_metrics(out)
    printed = capsys.readouterr().out
    assert f"config: {run / 'config.yaml'} (the checkpoint's run; --cfg and the flags override it)" in printed
    assert f"results: {out / 'eval.json'}" in printed
    # the run's training device is not imposed on evaluation (this machine has no cuda:1)
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["eval"]["device"] = "cuda:1"
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert cli_main(["eval", "--ckpt", "run/checkpoints/epoch_24.safetensors", "eval.test_batch_size=2"]) == 0
    # a run config this version cannot read (another hap3d's keys): warned, the defaults plus flags still evaluate
    data["model"]["from_the_future"] = 1
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    capsys.readouterr()
    assert cli_main(["eval", "--ckpt", "run/checkpoints/epoch_24.safetensors", "--data-root", str(root / "data"),
                     "--body-model-dir", str(body), "eval.test_batch_size=2", "data.num_workers=0"]) == 0
    assert "does not load" in capsys.readouterr().err
    del data["model"]["from_the_future"]
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    # a flag still beats the run's config
    assert cli_main(["eval", "--ckpt", str(run / "checkpoints" / "epoch_24.safetensors"), "--data-root",
                     str(tmp_path / "elsewhere")]) == 2
    assert str(tmp_path / "elsewhere") in capsys.readouterr().err


def test_default_eval_folders_differ_per_checkpoint_and_test_set(tmp_path):
    ckpts = tmp_path / "checkpoints"
    assert eval_out_dir(ckpts / "epoch_24.safetensors", crowd=False) == ckpts / "eval_epoch_24"
    assert eval_out_dir(ckpts / "last.pt", crowd=False) == ckpts / "eval_last"
    assert eval_out_dir(ckpts / "epoch_24.safetensors", crowd=True) == ckpts / "eval_epoch_24_crowd"
    assert eval_out_dir(tmp_path / "snapshot_10.pth.tar", crowd=False) == tmp_path / "eval_snapshot_10"


def test_eval_command_names_the_body_model_setting(setup, tmp_path, capsys):
    root, _, ckpt = setup
    code = cli_main(["eval", "--ckpt", str(ckpt), "--data-root", str(root / "data"), "--body-model-dir",
                     str(tmp_path / "nobody")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"no neutral SMPL model found in {tmp_path / 'nobody'}" in err
    assert "point it at yours with --body-model-dir DIR or data.body_model_dir=DIR" in err
