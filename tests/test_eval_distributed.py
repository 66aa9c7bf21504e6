"""`hap3d eval` under torchrun: samples sharded across 2 gloo processes on CPU, gathered, metrics identical to one
process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from hap3d.config import load_config
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint

from train_script import TINY


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1")


def test_two_process_evaluation_equals_one_process(tmp_path, body_dir):
    from hap3d.synth import write_synthetic_datasets

    root = Path(write_synthetic_datasets(tmp_path / "data", body_dir, size="tiny", datasets=["PW3D"]))
    cfg = load_config(None, TINY + [f"data.body_model_dir={body_dir}"])
    torch.manual_seed(0)
    ckpt = save_model_checkpoint(tmp_path / "m.safetensors", build_model(cfg.model, body_dir), cfg.model)
    # batches of 3 over 8 person-frames: rank 0 takes batches 0 and 2, rank 1 batch 1
    args = ["eval", "--ckpt", str(ckpt), "--data-root", str(root), "--body-model-dir", str(body_dir), "--device",
            "cpu", "eval.test_batch_size=3", "data.num_workers=0"]
    one = subprocess.run([sys.executable, "-m", "hap3d.cli", *args, "--out", str(tmp_path / "one")],
                         env=_env(), timeout=300, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                          "hap3d.cli", *args, "--out", str(tmp_path / "two")],
                         env=_env(), timeout=300, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / d / "eval.json").read_text()) for d in ("one", "two"))
    assert a["num_samples"] == b["num_samples"] == 8
    for key in ("means_mm", "pck150", "auc", "per_sequence", "pa_degenerate_samples"):
        assert a[key] == b[key], key
    for name in ("eval_per_sample.csv", "eval_per_sequence.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    assert two.stdout.count("results: ") == 1 and two.stdout.count("done in") == 1, "one process reports"
