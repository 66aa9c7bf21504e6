"""Training-data throughput per worker process on synthetic data in the real formats.

Prints samples/s of one process building training samples (what each DataLoader worker does), split by stage
(image decode, crop/augment, SMPL-fit targets, PoseFix), for our pipeline and for a plain baseline that runs
a full 6890-vertex SMPL forward per sample, as the reference does, in the same run.

    python benchmarks/bench_data.py [--size small] [--samples 200] [--datasets MSCOCO Human36M]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import hap3d.data.base as base
import hap3d.data.fit as fit
from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
from hap3d.body.smpl import SMPL, find_smpl_file, load_smpl_arrays
from hap3d.body.synth import write_body_model_dir
from hap3d.data import build_fit_model, dataset_class, dataset_root
from hap3d.data.synth import write_synthetic_datasets


class StageTimer:
    """Within ``with``, wraps functions that ``hap3d.data.base`` calls to accumulate their wall time per stage."""

    STAGES = {"load_image": "decode", "crop_image": "crop+augment", "compute_fit_targets": "smpl fit", "synthesize_pose": "posefix"}

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.originals: dict[str, object] = {}

    def __enter__(self) -> "StageTimer":
        for name, stage in self.STAGES.items():
            fn = self.originals[name] = getattr(base, name)
            setattr(base, name, self._timed(fn, stage))
        return self

    def _timed(self, fn, stage: str):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[stage] += time.perf_counter() - t

        return timed

    def __exit__(self, *exc) -> None:
        for name, fn in self.originals.items():
            setattr(base, name, fn)


class FullMeshFitModel(fit.FitModel):
    """Baseline: skin all 6890 vertices per sample, as the reference's data workers did."""

    def __init__(self, arrays: dict, regressors: dict) -> None:
        self.smpl = SMPL(arrays)
        self.regressors = {k: np.asarray(v, np.float32) for k, v in regressors.items()}
        self.num_support = arrays["v_template"].shape[0]


def run(name: str, root: Path, fit_model, n: int) -> tuple[float, dict[str, float]]:
    ds = dataset_class(name)(dataset_root(root, name), fit_model)
    ds[0]  # warm caches
    with StageTimer() as timer:
        t = time.perf_counter()
        for i in range(n):
            ds[i % len(ds)]
        total = time.perf_counter() - t
    return n / total, {k: v / total for k, v in timer.seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=["tiny", "small", "medium"])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--datasets", nargs="+", default=["MSCOCO", "Human36M", "MuCo", "MPII"])
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        body = write_body_model_dir(Path(tmp) / "body")
        root = Path(tmp) / "data"
        write_synthetic_datasets(root, body, size=args.size, datasets=args.datasets)
        ours = build_fit_model(body)
        arrays = load_smpl_arrays(find_smpl_file(body, "neutral"))
        extra = load_regressor(find_regressor(body, "J_regressor_extra"))
        h36m = load_regressor(find_regressor(body, "J_regressor_h36m_correct"))
        baseline = FullMeshFitModel(arrays, {"smpl30": smpl30_regressor(arrays["J_regressor"], extra), "h36m": h36m})
        print(f"one process, 1 thread; {args.samples} samples per dataset; fit model skins {ours.num_support} of "
              f"{baseline.num_support} vertices")
        for name in args.datasets:
            rate_b, _ = run(name, root, baseline, args.samples)
            rate, shares = run(name, root, ours, args.samples)
            split = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items()))
            print(f"{name:10s} ours {rate:7.1f} samples/s  full-mesh baseline {rate_b:7.1f}  ratio {rate / rate_b:4.2f}x  [{split}]")


if __name__ == "__main__":
    main()
