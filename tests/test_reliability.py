"""The command line against hostile configs, output folders, existing runs, signals and full disks (issue 13).

Each case checks the exit code, that the message names the file or setting, and that nothing was written where it
should not be. Cases that could hang or crash the interpreter (a FIFO, /dev/zero, signals, kills) run in a
subprocess with a timeout.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hap3d.cli import main as cli_main
from hap3d.data.io import DataError
from hap3d.engine.rundir import LOCK_FILE, claim_run_dir
from hap3d.infer.keypoints import read_keypoints
from hap3d.utils import WriteError, atomic_write

from conftest import TINY_VIT

SCRIPT = str(Path(__file__).with_name("train_script.py"))
TINY = [f"model.{k}={v}" for k, v in TINY_VIT.items()]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hap3d.cli", *args], capture_output=True, text=True, errors="replace",
                          timeout=timeout, env=_env())


# ----------------------------------------------------------------------------------------------- config files
def _alias_bomb() -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name, content, problem", [
    ("folder", None, "is a folder, not a file"),
    ("latin1.yaml", b"train:\n  lr: 0.1 # caf\xe9\n", "not UTF-8 text (byte 22"),
    ("huge.yaml", b"# padding\n" * 200_000, "above the 1 MB limit"),
    ("deep.yaml", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("bomb.yaml", _alias_bomb().encode(), "more than 100000 values"),
    ("broken.yaml", b"train: [1,\n", "invalid YAML"),
])
def test_config_files_that_are_not_configs(tmp_path, capsys, name, content, problem):
    path = tmp_path / name
    path.mkdir() if content is None else path.write_bytes(content)
    start = time.time()
    assert cli_main(["train", "--cfg", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(path) in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    assert time.time() - start < 30, "bounded time"


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_config_that_is_a_pipe_or_a_device_is_refused_at_once(tmp_path, special):
    path = special
    if special == "fifo":
        path = str(tmp_path / "cfg.fifo")
        os.mkfifo(path)  # nobody ever writes: reading it would wait forever
    done = _cli("train", "--cfg", path, "--out", str(tmp_path / "run"), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and path in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, problem", [
    ("train.lr=[1,", "override 'train.lr=[1,': invalid YAML"),
    (".lr=1", "override '.lr=1': '.lr' is not a key"),
    ("eval.test_batch_size=0", "'eval.test_batch_size' must be an integer >= 1, got 0"),
    ("train.lr=.nan", "'train.lr' must be a finite number > 0, got nan"),
    ("train.lr=-1", "'train.lr' must be a finite number > 0, got -1.0"),
    ("train.lr=.inf", "'train.lr' must be a finite number > 0, got inf"),
    ("data.num_workers=-3", "'data.num_workers' must be an integer >= 0, got -3"),
    ("train.seed=-5", "'train.seed' must be in [0, 2^32), got -5"),
    ("train.momentum=1.5", "'train.momentum' must be in [0, 1), got 1.5"),
    ("model.num_heads=0", "'model.num_heads' must be an integer >= 1, got 0"),
    ("model.patch_size=0", "'model.patch_size' must be an integer >= 1, got 0"),
    ("model.embed_dim=1000000", "'model.embed_dim' must be a network under 5e+09 parameters"),
    ("eval.device=tpu:0", "'eval.device' must be auto, cpu, cuda, cuda:N or mps, got 'tpu:0'"),
    ("data.group_weights=[0,0]", "'data.group_weights' must be finite numbers >= 0 with a positive sum"),
    ("eval.runtime=turbo", "'eval.runtime' must be one of ['auto', 'eager', 'fast', 'int8'], got 'turbo'"),
])
def test_every_setting_is_validated_before_any_work(tmp_path, capsys, override, problem):
    assert cli_main(["train", "--out", str(tmp_path / "run"), override]) == 2
    err = capsys.readouterr().err
    assert problem in err and ("command line" in err or "override" in err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a device this machine lacks")
def test_a_device_that_does_not_exist_stops_training_before_any_work(tmp_path, capsys, body_dir):
    assert cli_main(["train", "--out", str(tmp_path / "run"), "--body-model-dir", str(body_dir),
                     "eval.device=cuda:99"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda:99'" in err and ("no CUDA" in err or "no GPU" in err) and "--device cpu" in err, err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------- output folders
def test_out_that_is_a_file_too_long_or_unwritable(tmp_path, capsys, body_dir):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    long = tmp_path / ("x" * 300)
    for out, problem in ((a_file, "names a file, not a folder"), (long, "above the 255-byte limit"),
                         (Path("/sys/hap3d-not-writable"), "permission denied")):
        assert cli_main(["train", "--out", str(out), "--body-model-dir", str(body_dir), *TINY]) == 2
        err = capsys.readouterr().err
        assert problem in err and "run directory" in err, err
    assert a_file.read_text() == "mine" and long.name not in os.listdir(tmp_path)


def test_existing_run_and_user_config_are_never_replaced(tmp_path, capsys, body_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("my: notes\n")
    assert cli_main(["train", "--out", str(run), "--body-model-dir", str(body_dir), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.yaml'} is not from a hap3d run" in err, err
    assert (run / "config.yaml").read_text() == "my: notes\n"
    (run / "config.yaml").unlink()
    (run / "history.json").write_text("{}")  # a run's marker
    assert cli_main(["train", "--out", str(run), "--body-model-dir", str(body_dir), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"{run} already holds a hap3d run" in err and "--resume" in err and "--overwrite" in err, err
    assert (run / "history.json").read_text() == "{}"
    both = ["--resume", "--overwrite"]
    assert cli_main(["train", "--out", str(run), "--body-model-dir", str(body_dir), *both, *TINY]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_a_run_folder_in_use_is_refused(tmp_path, capsys, body_dir):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another training process holds the run
        assert cli_main(["train", "--out", str(run), "--body-model-dir", str(body_dir), *TINY]) == 2
    assert "another hap3d process is training in" in capsys.readouterr().err


def test_claim_removes_stale_temporaries_and_overwrite_removes_only_run_files(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/last.pt", "checkpoints/epoch_0.safetensors", "train.log", "history.json",
                 "config.yaml", "eval_epoch_0/eval.json", "tensorboard/events", "notes.txt", "data/keep.json"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")
    stale = [run / "checkpoints" / ".last.pt.k2j3.tmp", run / ".history.json.a1.tmp"]
    for s in stale:
        s.write_bytes(b"\0" * 1000)
    said = []
    with claim_run_dir(run, resume=True, announce=said.append):
        pass
    assert not any(s.exists() for s in stale) and (run / "checkpoints" / "last.pt").exists()
    assert said == [f"removed 2 half-written file(s) left by a killed run in {run}"]
    with claim_run_dir(run, overwrite=True, announce=said.append):
        pass
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert left == [LOCK_FILE, "data/keep.json", "notes.txt"], left
    assert said[-1].startswith(f"--overwrite: removed the previous run in {run}")


# ----------------------------------------------------------------------------------------------- faults
def test_full_disk_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.pt"

    def disk_full(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=re.escape(f"no space left on device): {target}")):
        atomic_write(target, disk_full)
    assert list(target.parent.iterdir()) == [], "the partial file is removed"

    def torch_style(tmp: str) -> None:  # torch.save's C++ writer: no errno, only this text
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed; basic_ios::clear: iostream error")

    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    with pytest.raises(WriteError, match=re.escape(f"no space left on device): {target}")):
        atomic_write(target, torch_style)


def test_sigterm_saves_the_state_and_says_how_to_resume(tmp_path, body_dir):
    run = tmp_path / "run"
    args = [sys.executable, SCRIPT, "--out", str(run), "--body", str(body_dir), "--samples", "40",
            "train.train_batch_size=2", "train.end_epoch=2"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        log = run / "train.log"
        if log.is_file() and re.search(r"step [3-9]/20", log.read_text()):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM at" in err and f"training state saved to {run / 'checkpoints' / 'last.pt'}" in err
    assert f"hap3d train --out {run} --resume" in err and "Traceback" not in err
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and 3 <= state["step_in_epoch"] < 20, "saved where it stopped, mid-epoch"
    done = subprocess.run(args + ["--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert final["global_step"] == 40 and [s["step"] for s in final["history"]["steps"]] == list(range(1, 41))


def test_quickstart_killed_during_setup_is_redone(tmp_path, capsys):
    out = tmp_path / "qs"
    proc = subprocess.Popen([sys.executable, "-m", "hap3d.cli", "quickstart", "--out", str(out), "--budget", "tiny",
                             "--device", "cpu"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob(".data.partial-*")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert list(out.glob(".data.partial-*")), "killed while writing the synthetic data"
    assert not (out / "data").exists(), "a half-written data folder is never in place"
    assert cli_main(["quickstart", "--out", str(out), "--budget", "tiny", "--device", "cpu"]) in (0, 1)
    assert "synthetic datasets (real formats)" in capsys.readouterr().out  # written again, not trusted
    assert not list(out.glob(".*.partial-*")) and (out / "run" / "eval_final.json").is_file()


# ----------------------------------------------------------------------------------------------- messages
def test_debug_shows_the_traceback_and_internal_errors_are_one_line(tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / "none.yaml")
    assert cli_main(["train", "--cfg", missing, "--out", str(tmp_path / "r")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert cli_main(["train", "--debug", "--cfg", missing, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and f"config file not found: {missing}" in err

    import hap3d.engine.run as run

    monkeypatch.setattr(run, "train", lambda *a, **k: {}["boom"])
    assert cli_main(["train", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "hap3d: internal error: KeyError: 'boom'" in err and "--debug" in err and "Traceback" not in err
    monkeypatch.setenv("HAP3D_DEBUG", "1")
    assert cli_main(["train", "--out", str(tmp_path / "r")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_keypoint_json_nested_too_deeply_is_a_data_error(tmp_path):
    deep = tmp_path / "kp.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError, match=re.escape(f"{deep}: JSON nested too deeply to read")):
        read_keypoints(deep)


def test_resume_from_a_state_that_does_not_fit_is_named(tmp_path, body_dir):
    run = tmp_path / "run"
    args = [sys.executable, SCRIPT, "--out", str(run), "--body", str(body_dir), "--samples", "8",
            "train.train_batch_size=2", "train.max_steps_per_epoch=1"]
    subprocess.run(args + ["train.end_epoch=1"], env=_env(), check=True, capture_output=True, timeout=300)
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["optimizer"]["param_groups"] = state["optimizer"]["param_groups"][:1] + state["optimizer"]["param_groups"]
    torch.save(state, last)  # one parameter group too many: from another optimizer set-up
    done = subprocess.run(args + ["train.end_epoch=2", "--resume"], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and str(last) in done.stderr and "optimizer" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


SURROGATE_SCRIPT = """
import sys
from pathlib import Path
from hap3d.data import build_fit_model
from hap3d.data.mpii import MPII
ds = MPII(Path(sys.argv[1]), build_fit_model(sys.argv[2]))
for i in range(len(ds)):
    ds[i]
print("skipped", len(ds.skipped))
"""


@pytest.mark.parametrize("present", [True, False])
def test_annotation_file_name_that_is_not_utf8(tmp_path, body_dir, present):
    """'x\\udcff.jpg' is legal JSON; handed to OpenCV as a string it crashes the process. It must be read (when the
    file, named with the byte 0xff, exists) or be a missing image, in `data check` and in a training loader."""
    from test_data_2d import write_mpii

    folder = write_mpii(tmp_path)
    db_path = folder / "annotations" / "train.json"
    db = json.loads(db_path.read_text())
    db["images"][0]["file_name"] = "images/x\udcff.jpg"
    db_path.write_text(json.dumps(db))  # ensure_ascii: the surrogate is written as \udcff
    image = folder / "images" / "a.jpg"
    if present:
        os.rename(image, os.path.join(os.fsencode(folder / "images"), b"x\xff.jpg"))
    checked = _cli("data", "check", "--root", str(tmp_path), "--body-model-dir", str(body_dir), "--datasets", "MPII",
                   "--allow-missing-images")
    assert checked.returncode in (0, 1), checked.stderr  # never a signal (negative) or an internal error
    assert "internal error" not in checked.stderr and "Traceback" not in checked.stderr
    loaded = subprocess.run([sys.executable, "-c", SURROGATE_SCRIPT, str(folder), str(body_dir)], capture_output=True,
                            text=True, timeout=120, env=_env())
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == ("skipped 0" if present else "skipped 1")


def test_demo_out_that_is_a_file_fails_before_any_work(tmp_path, capsys, body_dir):
    a_file = tmp_path / "out"
    a_file.write_text("mine")
    keypoints = Path(__file__).parent / "data" / "astronaut_keypoints.json"
    assert cli_main(["demo", str(tmp_path / "missing.png"), "--keypoints", str(keypoints), "--random-weights",
                     "--body-model-dir", str(body_dir), "--out", str(a_file), "--device", "cpu"]) == 2
    assert f"--out names a file, not a folder: {a_file}" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
