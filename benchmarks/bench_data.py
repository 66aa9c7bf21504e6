"""Training-data throughput per worker process on synthetic data in the real formats.

Prints samples/s of one process building training samples (what each DataLoader worker does), split by stage
(image decode, crop/augment, SMPL-fit targets, PoseFix), for our pipeline and, in the same run, for the
reference's per-sample work transcribed in ``reference_style.py`` (whole-frame float decode and crop, full
6890-vertex SMPL forward, step-by-step PoseFix). ``--frame`` re-encodes the synthetic images at a real
dataset's resolution (annotations scaled alike) since decoding and whole-frame work grow with it.

    python benchmarks/bench_data.py [--size small] [--samples 200] [--datasets MSCOCO Human36M] [--frame 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

import hap3d.data.base as base
import hap3d.data.fit as fit
from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
from hap3d.body.smpl import SMPL, find_smpl_file, load_smpl_arrays
from hap3d.data import build_fit_model, dataset_class, dataset_root
from hap3d.synth import write_body_model_dir, write_synthetic_datasets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_style  # noqa: E402


class StageTimer:
    """Within ``with``, wraps functions that ``hap3d.data.base`` calls to accumulate their wall time per stage."""

    STAGES = {"read_image_bgr": "decode", "crop_image": "crop+augment", "compute_fit_targets": "smpl fit",
              "synthesize_pose": "posefix"}

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


def pad_frames(folder: Path, frame: int) -> tuple[int, int]:
    """Grow every image under ``folder`` to at least frame x frame by mirroring it to the right and bottom (so
    the extra area decodes like photo content), and update the width/height of the annotation files' image
    records; coordinates stay valid since the origin does not move. Returns the (width, height) range."""
    sizes: dict[str, tuple[int, int]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        while img.shape[0] < frame or img.shape[1] < frame:  # mirroring at most doubles a side per pass
            dy, dx = min(max(frame - img.shape[0], 0), img.shape[0]), min(max(frame - img.shape[1], 0), img.shape[1])
            img = cv2.copyMakeBorder(img, 0, dy, 0, dx, cv2.BORDER_REFLECT)
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        sizes[path.as_posix()] = (img.shape[1], img.shape[0])
    for path in folder.rglob("*.json"):
        db = json.loads(path.read_text())
        if not (isinstance(db, dict) and isinstance(db.get("images"), list)):
            continue
        for rec in db["images"]:
            match = [v for k, v in sizes.items() if k.endswith("/" + rec["file_name"])]
            if match and "width" in rec:
                rec["width"], rec["height"] = match[0]
        path.write_text(json.dumps(db))
    ws, hs = zip(*sizes.values())
    return (min(ws), max(ws)), (min(hs), max(hs))


@contextlib.contextmanager
def reference_pipeline():
    """Swap the reference-style stages into ``hap3d.data.base`` for the duration."""
    swaps = {"read_image_bgr": reference_style.decode, "crop_image": reference_style.crop,
             "synthesize_pose": reference_style.posefix}
    originals = {k: getattr(base, k) for k in swaps}
    for k, fn in swaps.items():
        setattr(base, k, fn)
    try:
        yield
    finally:
        for k, fn in originals.items():
            setattr(base, k, fn)


def run(name: str, root: Path, fit_model, n: int, reference: bool = False) -> tuple[float, dict[str, float]]:
    ds = dataset_class(name)(dataset_root(root, name), fit_model)
    ds[0]  # warm caches
    with reference_pipeline() if reference else contextlib.nullcontext(), StageTimer() as timer:
        t = time.perf_counter()
        for i in range(n):
            ds[i % len(ds)]
        total = time.perf_counter() - t
    return n / total, {k: v / total for k, v in timer.seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="tiny", choices=["tiny", "small", "medium"])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--datasets", nargs="+", default=["MSCOCO", "Human36M", "MuCo", "MPII"])
    ap.add_argument("--frame", type=int, default=0,
                    help="grow images to at least this side (e.g. 1000 for Human3.6M, 640 for COCO); 0: as written")
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
        print(f"one process, 1 thread; {args.samples} samples per dataset; our fit model skins {ours.num_support} "
              f"of {baseline.num_support} vertices; the reference-style baseline is benchmarks/reference_style.py")
        for name in args.datasets:
            folder = dataset_root(root, name)
            if args.frame:
                (w0, w1), (h0, h1) = pad_frames(folder, args.frame)
                frames = f"{w0}-{w1}x{h0}-{h1}" if (w0, h0) != (w1, h1) else f"{w0}x{h0}"
            else:
                frames = "as written"
            rate_b, shares_b = run(name, root, baseline, args.samples, reference=True)
            rate, shares = run(name, root, ours, args.samples)
            print(f"{name:10s} frames {frames}: ours {rate:6.1f} samples/s, reference-style {rate_b:6.1f}, "
                  f"ratio {rate / rate_b:4.2f}x")
            for label, rate_, shares_ in (("ours", rate, shares), ("reference-style", rate_b, shares_b)):
                split = ", ".join(f"{k} {v / rate_ * 1e3:.1f}" for k, v in sorted(shares_.items()))
                print(f"{'':12s}{label:16s} ms/sample: total {1e3 / rate_:.1f} = {split}, other "
                      f"{(1 - sum(shares_.values())) / rate_ * 1e3:.1f}")


if __name__ == "__main__":
    main()
