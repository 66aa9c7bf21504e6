"""`hap3d eval` end to end on golden case D: data root in the 3DPW layout, our checkpoint of the golden weights."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hap3d.cli import main as cli_main
from hap3d.model.checkpoint import save_model_checkpoint

from golden import golden_dir, golden_model, npz

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


def test_eval_command_reproduces_reference_metrics(setup):
    root, body, ckpt = setup
    out = root / "eval_out"
    code = cli_main(["eval", "--ckpt", str(ckpt), "--data-root", str(root / "data"), "--body-model-dir", str(body),
                     "--out", str(out), "eval.test_batch_size=2", "data.num_workers=0"])
    assert code == 0
    got = json.loads((out / "eval.json").read_text())
    ref = json.loads((golden_dir() / "case_d.json").read_text())["metric_model"]
    for m in ("mpjpe", "pa_mpjpe", "mpvpe"):
        assert got["means_mm"][m] == pytest.approx(ref[m]["mean"], rel=1e-4)
    assert got["num_samples"] == len(ref["mpjpe"]["per_sample"])
    assert set(got["per_sequence"]) == {"synthseq_00", "synthseq_01"}
    rows = list(csv.DictReader(open(out / "eval_per_sample.csv")))
    for row, want in zip(rows, ref["mpjpe"]["per_sample"]):
        assert float(row["mpjpe"]) == pytest.approx(want, rel=1e-4)


def test_eval_command_reports_missing_data_clearly(setup, capsys):
    root, body, ckpt = setup
    code = cli_main(["eval", "--ckpt", str(ckpt), "--data-root", str(root / "nowhere"), "--body-model-dir", str(body)])
    assert code == 2
    assert "3DPW annotation file not found" in capsys.readouterr().err
