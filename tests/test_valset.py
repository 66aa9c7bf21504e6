"""data.valset: the 3DPW validation split is what training evaluates; the test set is scored once at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hap3d.cli import main as cli_main
from hap3d.config import ConfigError, load_config
from hap3d.data.pw3d import PW3D
from hap3d.engine.run import build_eval_set, resolve_val_set, train
from hap3d.model.runtime import FAST_TOLERANCE_M

from train_script import TINY


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, body_dir) -> Path:
    from hap3d.synth import write_synthetic_datasets

    return Path(write_synthetic_datasets(tmp_path_factory.mktemp("valset"), body_dir, size="tiny",
                                         datasets=["MuCo", "PW3D"]))


def _annotation_ids(path: Path) -> set[int]:
    return {a["id"] for a in json.loads(path.read_text())["annotations"]}


def test_the_validation_split_reads_every_validation_sequence_with_openpose_input(data_root):
    folder = data_root / "PW3D" / "data"
    val = PW3D(folder, validation=True)
    assert val.split == "val" and {r.input_set for r in val.records} == {"openpose19"}
    assert {r.aid for r in val.records} == _annotation_ids(folder / "3DPW_latest_validation.json")
    crowd = PW3D(folder, crowd=True)
    assert {r.sequence for r in crowd.records} < {r.sequence for r in val.records}, "the crowd subset is smaller"
    with pytest.raises(ValueError, match="crowd and validation select different splits"):
        PW3D(folder, crowd=True, validation=True)


def test_training_evaluates_the_validation_split_and_scores_the_test_set_once(tmp_path, data_root, body_dir):
    cfg = load_config(None, TINY + [f"data.root={data_root}", f"data.body_model_dir={body_dir}",
                                    "data.trainset_3d=[MuCo]", "data.trainset_2d=[]", "train.train_batch_size=2",
                                    "train.end_epoch=2", "train.max_steps_per_epoch=1", "train.eval_every_epoch=true",
                                    "eval.device=cpu", "eval.test_batch_size=4", "data.valset=PW3D"])
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    val_ids = _annotation_ids(data_root / "PW3D" / "data" / "3DPW_latest_validation.json")
    test_ids = _annotation_ids(data_root / "PW3D" / "data" / "3DPW_latest_test.json")
    for epoch in (0, 1):
        val = json.loads((run / f"val_epoch_{epoch}.json").read_text())
        assert val["evaluated_on"] == "3DPW validation" and val["num_samples"] == len(val_ids)
        assert not (run / f"eval_epoch_{epoch}.json").exists(), "the test set is not evaluated per epoch"
    assert not (run / "test_epoch_0.json").exists()
    test = json.loads((run / "test_epoch_1.json").read_text())
    assert test["num_samples"] == len(test_ids) and "scored once" in test["evaluated_on"]
    log = (run / "train.log").read_text()
    assert "epoch 1/2 eval: 3DPW validation: MPJPE" in log and "test set, scored once after the last epoch: " in log
    # asked for: `hap3d eval --valset` scores the validation split of a run's checkpoint
    ckpt = run / "checkpoints" / "epoch_1.safetensors"
    assert cli_main(["eval", "--ckpt", str(ckpt), "--valset", "eval.test_batch_size=4"]) == 0
    again = json.loads((run / "checkpoints" / "eval_epoch_1_val" / "eval.json").read_text())
    # the same numbers, up to the CPU inference runtime's tolerance (hap3d.model.runtime: per coordinate)
    tolerance_mm = 3**0.5 * FAST_TOLERANCE_M * 1000
    want = json.loads((run / "val_epoch_1.json").read_text())["means_mm"]
    assert again["means_mm"] == pytest.approx(want, abs=tolerance_mm)


def test_a_validation_split_that_overlaps_the_test_set_or_does_not_exist_is_refused(data_root):
    with pytest.raises(ConfigError, match=r"3DPW_latest_validation.json, which the test set \(3DPW-Crowd\) is drawn "
                                          r"from too"):
        resolve_val_set(load_config(None, ["data.valset=PW3D", "data.crowd=true"]))
    with pytest.raises(ConfigError, match=r"data.valset='MuCo' has no validation split"):
        resolve_val_set(load_config(None, ["data.valset=MuCo"]))
    with pytest.raises(ConfigError, match=r"data.valset: unknown dataset 'Nowhere'"):
        resolve_val_set(load_config(None, ["data.valset=Nowhere"]))
    dataset, label = build_eval_set(load_config(None, [f"data.root={data_root}", "data.valset=PW3D"]), True)
    assert label == "3DPW validation" and dataset.split == "val"


def test_data_check_covers_the_validation_split_and_requires_it_for_a_valset_config(tmp_path, data_root, body_dir):
    import shutil

    from hap3d.data.check import check_with_config

    root = tmp_path / "root"
    shutil.copytree(data_root / "PW3D", root / "PW3D")
    cfg = tmp_path / "val.yaml"
    cfg.write_text(json.dumps({"data": {"root": str(root), "body_model_dir": str(body_dir), "trainset_3d": [],
                                        "trainset_2d": [], "valset": "PW3D"}}))
    report = check_with_config(None, None, None, cfg=cfg)
    rows = {d.name: d for d in report.datasets}
    assert rows["PW3D-val"].status == "OK" and rows["PW3D-val"].samples == len(PW3D(root / "PW3D" / "data",
                                                                                       validation=True))
    assert rows["PW3D"].requested, "the test split stays required beside the validation split"
    for name in ("3DPW_latest_validation.json", "3DPW_validation_crowd_hhrnet_result.json"):
        (root / "PW3D" / "data" / name).unlink()
    report = check_with_config(None, None, None, cfg=cfg)
    assert report.exit_code == 1
    assert "the config evaluates on 3DPW validation, which needs" in {d.name: d for d in report.datasets}[
        "PW3D-val"].errors[0]
    assert check_with_config(root, None, ["PW3D"]).exit_code == 0, "without data.valset it is not needed"
