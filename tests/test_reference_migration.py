"""Moving from the reference's command line and YAML: the flat `amp` key (its --amp flag) and the notes on ignored
keys."""

from __future__ import annotations

import logging

import pytest

from hap3d.config import ConfigError, load_config


def _load(tmp_path, text: str):
    path = tmp_path / "reference.yml"
    path.write_text(text)
    return load_config(path)


def test_a_reference_yaml_says_fp16_as_the_reference_ran_it(tmp_path):
    cfg = _load(tmp_path, "trainset_3d: ['Human36M', 'MuCo']\nlr: 0.001\namp: true\n")
    assert (cfg.train.amp, cfg.train.loss_scale, cfg.train.init_scale) == ("fp16", "fixed", 1024.0)
    assert _load(tmp_path, "lr: 0.001\n").train.amp == "none", "without the key: fp32, as before"
    assert _load(tmp_path, "amp: false\n").train.amp == "none"
    with pytest.raises(ConfigError, match=r"amp: True contradicts train.loss_scale: 'dynamic'"):
        _load(tmp_path, "amp: true\ntrain: {loss_scale: dynamic}\n")
    with pytest.raises(ConfigError, match=r"amp: 'fp16': the reference's --amp flag as a flat key takes true"):
        _load(tmp_path, "amp: fp16\n")


def test_use_gt_info_note_says_what_the_ground_truth_box_does(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hap3d"):
        _load(tmp_path, "use_gt_info: true\n")
    note = caplog.text
    assert "reference key 'use_gt_info' ignored" in note
    assert "cropped around their input 2D pose" in note and "only filters" in note
