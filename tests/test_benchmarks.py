"""The benchmark scripts run (smallest settings); their numbers are for people, not for assertions."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script,args", [
    ("bench_model.py", ["--depth", "2", "--batches", "1", "--repeats", "1", "--train-batch", "2", "--dtypes", "fp32"]),
    ("bench_data.py", ["--samples", "4", "--datasets", "MSCOCO"]),
    ("bench_train.py", ["--steps", "2", "--batch", "2", "--workers", "0", "--skip-vit-b"]),
    ("bench_infer.py", ["--images", "1", "--depth", "2", "--backend", "raster"]),
    ("bench_runtime.py", ["--depth", "2", "--batches", "1", "--repeats", "1"]),
    ("ceiling.py", ["--depth", "2", "--batches", "1", "--reps", "1"]),
    ("bench_gpu.py", ["--device", "cpu", "--tiny", "--steps", "2", "--batch", "2", "--eval-batch", "2",
                      "--loader-batches", "2", "--warmup", "1"]),
])
def test_benchmark_runs(script, args):
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "/s" in out.stdout
