"""Every shipped config loads and validates; the reference's keys and spellings; errors name their source."""

import logging
from pathlib import Path

import numpy as np
import pytest

from hap3d.config import SHIPPED_CONFIGS, ConfigError, load_config, shipped_configs

CONFIGS = sorted(SHIPPED_CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.train.end_epoch == 11
    assert cfg.model.reference_compat == (path.name != "hap_vit_b_improved.yaml")


def test_shipped_configs_load_by_name(tmp_path, monkeypatch):
    assert shipped_configs() == [p.stem for p in CONFIGS] and "hap_vit_b_3dpw" in shipped_configs()
    for name in ("hap_vit_b_3dpw", "hap_vit_b_3dpw.yaml"):
        assert load_config(name) == load_config(SHIPPED_CONFIGS / "hap_vit_b_3dpw.yaml")
    monkeypatch.chdir(tmp_path)  # a file of that name in the working folder wins
    (tmp_path / "hap_vit_b_3dpw.yaml").write_text("lr: 0.5\n")
    assert load_config("hap_vit_b_3dpw.yaml").train.lr == 0.5
    with pytest.raises(ConfigError,
                       match=r"config 'nope' not found: neither a file nor a shipped config \(.*hap_vit_b_3dpw"):
        load_config("nope")


def test_reference_optimizer_spelling_is_accepted(tmp_path):
    ref = tmp_path / "ref.yml"
    ref.write_text("optimizer: adamW\n")
    assert load_config(ref).train.optimizer == "adamw"
    assert load_config(None, ["train.optimizer=AdamW"]).train.optimizer == "adamw"
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["train.optimizer=rmsprop"])


def test_reference_flat_keys_work_on_the_command_line(tmp_path, caplog):
    cfg = load_config(None, ["lr=3e-4", "end_epoch=5", "train_batch_size=24", "lr_dec_epoch=[3]",
                             "trainset_2d=[MSCOCO]", "test_batch_size=8", "backbone_type=resnet", "camera_3d_size=3.0",
                             "optimizer=adamW"])
    t = cfg.train
    assert (t.lr, t.end_epoch, t.train_batch_size, t.lr_dec_epoch, t.optimizer) == (3e-4, 5, 24, [3], "adamw")
    assert cfg.data.trainset_2d == ["MSCOCO"] and cfg.eval.test_batch_size == 8
    assert cfg.model.backbone == "resnet50" and cfg.model.camera_3d_size == 3.0
    # the same mapping as in a file: the command line wins over the file's flat key
    ref = tmp_path / "ref.yml"
    ref.write_text("lr: 0.001\nend_epoch: 11\n")
    assert load_config(ref, ["lr=1e-4"]).train.lr == 1e-4 and load_config(ref, ["train.lr=1e-4"]).train.lr == 1e-4


def test_other_reference_keys_are_ignored_with_a_note(tmp_path, caplog):
    ref = tmp_path / "ref.yml"
    ref.write_text("continue_train: true\nnum_gpus: 4\ngpu_ids: '0-3'\nvis: false\nend_epoch: 3\n")
    with caplog.at_level(logging.WARNING, logger="hap3d.config"):
        cfg = load_config(ref, ["num_gpus=8", "input_img_shape=[256,256]"])
    assert cfg.train.end_epoch == 3
    notes = caplog.text
    assert f"{ref}: reference key 'continue_train' ignored: pass --resume" in notes
    assert "command line 'num_gpus=8': reference key 'num_gpus' ignored" in notes
    for key in ("gpu_ids", "vis", "input_img_shape"):
        assert f"reference key '{key}' ignored" in notes


def test_camera_and_bbox_3d_sizes_are_honoured_as_the_reference_does(tmp_path, body_dir):
    """The reference's set_args sets both sizes before its YAML is applied, so a YAML value wins."""
    ref = tmp_path / "ref.yml"
    ref.write_text("camera_3d_size: 3.0\nbbox_3d_size: 4.0\n")
    model = load_config(ref).model
    assert (model.camera_3d_size, model.bbox_3d_size) == (3.0, 4.0)
    assert model.camera_depth_scale == pytest.approx(5000 * 3.0 / 256)
    assert load_config(None, ["bbox_3d_size=1.0"]).model.bbox_3d_size == 1.0
    with pytest.raises(ConfigError, match=r"model.bbox_3d_size must be > 0"):
        load_config(None, ["model.bbox_3d_size=0"])
    # the depth range of the 64-space targets: z_rel = +-size/2 maps to the grid's ends
    from hap3d.data.transforms import depth_to_heatmap

    assert depth_to_heatmap(np.float32([-2.0, 0.0, 2.0]), bbox_3d_size=4.0).tolist() == [0.0, 32.0, 64.0]
    assert depth_to_heatmap(np.float32([-1000.0, 1000.0]), unit=1000.0).tolist() == [0.0, 64.0]


def test_errors_blame_the_command_line_or_the_file(tmp_path):
    ref = tmp_path / "ref.yml"
    ref.write_text("lr: 0.001\n")
    with pytest.raises(ConfigError, match=r"^command line override 'train.learning_rate=1': "
                                          r"unknown config key 'train.learning_rate'"):
        load_config(ref, ["train.learning_rate=1"])
    with pytest.raises(ConfigError,
                       match=r"^command line override 'learning_rate=1': unknown config key 'learning_rate'"):
        load_config(ref, ["learning_rate=1"])
    with pytest.raises(ConfigError, match=r"^command line override 'lr=fast': 'train.lr' must be a number"):
        load_config(ref, ["lr=fast"])
    bad = tmp_path / "bad.yml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: unknown config key 'train.learning_rate'"):
        load_config(bad, ["train.lr=0.1"])


def test_conflicting_reference_compat_is_an_error_only_within_one_source(tmp_path):
    assert load_config(None, ["reference_compat=false"]).model.reference_compat is False
    assert load_config(None, ["reference_compat=false", "model.reference_compat=false"]).model.reference_compat is False
    both = tmp_path / "both.yml"
    both.write_text("reference_compat: false\nmodel:\n  reference_compat: true\n")
    with pytest.raises(ConfigError, match=rf"^{both}: reference_compat: False contradicts model.reference_compat: True "
                                          "in the same file"):
        load_config(both)
    with pytest.raises(ConfigError, match=r"^command line: override 'reference_compat=false' contradicts "
                                          r"'model.reference_compat=true' \(both set model.reference_compat\)"):
        load_config(None, ["reference_compat=false", "model.reference_compat=true"])
    # Across sources the command line wins, whichever spelling either uses: every shipped config sets
    # reference_compat: true at the top, and model.reference_compat=false must turn it off.
    for path in CONFIGS:
        for text in ("model.reference_compat=false", "reference_compat=false"):
            assert load_config(path, [text]).model.reference_compat is False, (path.name, text)
    nested = tmp_path / "nested.yml"
    nested.write_text("model:\n  reference_compat: false\n")
    assert load_config(nested, ["reference_compat=true"]).model.reference_compat is True
    # an earlier run's config.yaml (reference_compat: null at the top) still loads
    old = tmp_path / "old_run_config.yml"
    old.write_text("reference_compat: null\nmodel:\n  reference_compat: false\n")
    assert load_config(old).model.reference_compat is False


def test_flat_and_sectioned_spellings_conflict_only_within_one_source(tmp_path):
    same = tmp_path / "same.yml"
    same.write_text("lr: 0.001\ntrain:\n  lr: 0.001\n")
    assert load_config(same).train.lr == 1e-3
    clash = tmp_path / "clash.yml"
    clash.write_text("lr: 0.001\ntrain:\n  lr: 0.0003\n")
    with pytest.raises(ConfigError, match=rf"^{clash}: lr: 0.001 contradicts train.lr: 0.0003 in the same file"):
        load_config(clash)
    with pytest.raises(ConfigError, match=r"^command line: override 'lr=1e-3' contradicts 'train.lr=3e-4'"):
        load_config(None, ["lr=1e-3", "train.lr=3e-4"])
    assert load_config(None, ["lr=1e-3", "train.lr=0.001"]).train.lr == 1e-3  # '1e-3' is a string to PyYAML
    assert load_config(None, ["train.lr=1e-3", "train.lr=3e-4"]).train.lr == 3e-4  # one spelling twice: the last
    # across sources the command line wins, in either spelling
    flat, sectioned = tmp_path / "flat.yml", tmp_path / "sectioned.yml"
    flat.write_text("lr: 0.001\n")
    sectioned.write_text("train:\n  lr: 0.001\n")
    for path in (flat, sectioned):
        for text in ("lr=3e-4", "train.lr=3e-4"):
            assert load_config(path, [text]).train.lr == 3e-4, (path.name, text)


def test_fixed_loss_scale_needs_fp16():
    assert load_config(None, ["train.amp=fp16", "train.loss_scale=fixed"]).train.loss_scale == "fixed"
    for amp in ("none", "bf16"):
        with pytest.raises(ConfigError, match=rf"loss_scale=fixed sets the fp16 loss scale, but train.amp is '{amp}'"):
            load_config(None, [f"train.amp={amp}", "train.loss_scale=fixed"])


def test_with_absolute_paths_resolves_against_the_current_directory(tmp_path, monkeypatch):
    from hap3d.config import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.root=data", "data.body_model_dir=../body", "train.pretrained=~/latest.pth"])
    fixed = with_absolute_paths(cfg)
    assert fixed.data.root == str(tmp_path / "data") and fixed.data.body_model_dir == str(tmp_path.parent / "body")
    assert fixed.train.pretrained == str(Path.home() / "latest.pth")
    assert cfg.data.root == "data", "the original is left as it was"
    assert with_absolute_paths(load_config(None)).train.pretrained is None


def test_loss_weights_name_the_loss_terms():
    """train.loss_weights maps loss-term names to weights >= 0; the config's names are the model's terms."""
    from hap3d.config import LOSS_NAMES
    from hap3d.model.losses import LOSS_NAMES as MODEL_LOSS_NAMES

    assert LOSS_NAMES == MODEL_LOSS_NAMES
    assert load_config(None).train.loss_weights == {}
    cfg = load_config(None, ["train.loss_weights={smpl_pose: 0, body_joint_cam: 2}",
                             "train.loss_weights.smpl_shape=0.5"])
    assert cfg.train.loss_weights == {"smpl_pose": 0.0, "body_joint_cam": 2.0, "smpl_shape": 0.5}
    with pytest.raises(ConfigError, match=r"^command line override 'train.loss_weights.smpl_pos=0': unknown loss term "
                                          r"'train.loss_weights.smpl_pos'. Did you mean 'smpl_pose'\? The terms are "
                                          r"body_joint_img, smpl_joint_img, smpl_pose, "):
        load_config(None, ["train.loss_weights.smpl_pos=0"])
    for bad in ("-1", "true", "heavy", ".inf"):
        with pytest.raises(ConfigError, match=r"'train.loss_weights.smpl_pose' must be a number >= 0 \(0 drops"):
            load_config(None, [f"train.loss_weights.smpl_pose={bad}"])
