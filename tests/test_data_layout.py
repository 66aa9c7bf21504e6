"""Where datasets are found under a data root (the reference's data/ tree and the lowercase coco/ + mpii/data/
tree), and what ``hap3d data check`` reports about folders, image folders, 3DPW-Crowd and a training config's
datasets."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import test_data_2d as d2

from hap3d.body.smpl import find_smpl_file
from hap3d.cli import build_parser
from hap3d.cli import main as cli_main
from hap3d.cli.data import format_data_report
from hap3d.data import (
    DATASETS,
    DatasetSpec,
    dataset_candidates,
    dataset_class,
    dataset_layout,
    dataset_root,
    find_dataset_root,
    written_dataset_root,
)
from hap3d.data.check import DatasetCheck, Options, _check_images, check_data_root, config_datasets
from hap3d.data.coco import MSCOCO
from hap3d.data.io import DataError
from hap3d.data.layout import DataFile, DatasetLayout
from hap3d.data.mpii import MPII
from hap3d.synth import SIZES, write_synthetic_datasets


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """MSCOCO and MPII as the tests of test_data_2d write them: coco/ and mpii/data/."""
    root = tmp_path_factory.mktemp("layout")
    d2.write_coco(root)
    d2.write_mpii(root)
    return root


def arrange(written: Path, tmp_path: Path, coco: str, mpii: str) -> Path:
    """A data root with the written COCO folder at ``coco`` and the MPII dataset folder at ``mpii``."""
    root = tmp_path / "root"
    shutil.copytree(written / "coco", root / coco)
    shutil.copytree(written / "mpii" / "data", root / mpii)
    return root


# The reference's data/ tree (MSCOCO/, MPII/data/), the lowercase tree (coco/, mpii/data/), and both with MPII's
# images/ and annotations/ directly in its folder (no data/ level, as mpii/images + mpii/annotations are symlinked).
LAYOUTS = [("MSCOCO", "MPII/data"), ("coco", "mpii/data"), ("MSCOCO", "MPII"), ("coco", "mpii")]


@pytest.mark.parametrize("coco, mpii", LAYOUTS)
def test_every_accepted_layout_is_found_by_readers_and_check(written, tmp_path, coco, mpii, body_dir):
    root = arrange(written, tmp_path, coco, mpii)
    assert dataset_root(root, "MSCOCO") == root / coco and dataset_root(root, "MPII") == root / mpii
    assert len(MSCOCO(dataset_root(root, "MSCOCO"), None)) == 2 and len(MPII(dataset_root(root, "MPII"), None)) == 3
    report = check_data_root(root, ["MSCOCO", "MPII"], body_dir, spot_checks=1)
    assert report.exit_code == 0, format_data_report(report)
    assert [d.folder for d in report.datasets] == [root / coco, root / mpii]


def test_candidates_are_tried_in_order_and_the_dataset_marker_decides():
    assert [str(c) for c in dataset_candidates("/d", "MPII")] == ["/d/MPII/data", "/d/MPII", "/d/mpii/data", "/d/mpii"]
    assert [str(c) for c in dataset_candidates("/d", "MSCOCO")] == ["/d/MSCOCO", "/d/coco"]
    # what `hap3d data synth` writes: the lowercase tree (coco/, mpii/data/), one of the accepted folders
    for name, spec in DATASETS.items():
        assert spec.written in spec.folders, name
    assert written_dataset_root("/d", "MPII") == Path("/d/mpii/data")


def test_marker_beats_order(written, tmp_path):
    # the reference tree ships a data/MPII/ folder (holding its MPII.py): an empty MPII/data must not hide mpii/data
    root = arrange(written, tmp_path, "coco", "mpii/data")
    (root / "MPII" / "data").mkdir(parents=True)
    (root / "MPII" / "MPII.py").write_text("")
    assert dataset_root(root, "MPII") == root / "mpii" / "data"
    # with both complete, the reference tree wins
    shutil.copytree(root / "mpii" / "data", root / "MPII" / "data", dirs_exist_ok=True)
    assert dataset_root(root, "MPII") == root / "MPII" / "data"
    # no marker anywhere: the first existing folder, so that the reader names the file missing in it
    for folder in (root / "MPII" / "data", root / "mpii" / "data"):
        (folder / "annotations" / "train.json").unlink()
    assert dataset_root(root, "MPII") == root / "MPII" / "data"
    with pytest.raises(DataError, match=f"MPII annotation file not found: {root}/MPII/data/annotations/train.json"):
        MPII(dataset_root(root, "MPII"), None)


def test_missing_dataset_error_lists_every_candidate(tmp_path):
    assert find_dataset_root(tmp_path, "MPII") is None
    with pytest.raises(DataError) as err:
        dataset_root(tmp_path, "MPII")
    tried = ", ".join(str(tmp_path / f) for f in ("MPII/data", "MPII", "mpii/data", "mpii"))
    assert str(err.value) == f"MPII not found under {tmp_path}: none of these folders exists: {tried}"


@pytest.mark.parametrize("folder", ["MSCOCO", "MSCOCO/annotations"])
def test_coco_neuralannot_in_either_place(written, tmp_path, folder, body_dir):
    root = arrange(written, tmp_path, "MSCOCO", "MPII/data")
    fits = root / "MSCOCO" / "MSCOCO_train_SMPL_NeuralAnnot.json"
    fits.rename(root / folder / fits.name)
    ds = MSCOCO(dataset_root(root, "MSCOCO"), None)
    assert [r.fit is not None for r in ds.records] == [True, False]
    check = check_data_root(root, ["MSCOCO"], body_dir, spot_checks=1).datasets[0]
    assert check.status == "OK" and root / folder / fits.name in [f.path for f in check.files]


# ------------------------------------------------------------------------------------------ data check
def test_check_lists_every_expected_path_of_a_missing_dataset(tmp_path):
    report = check_data_root(tmp_path, ["Human36M", "MPII"], None)
    h36m, mpii = report.datasets
    text = format_data_report(report)
    assert "more" not in text
    assert len(h36m.files) == 21  # 5 subjects x 4 files + images/
    for f in h36m.files + mpii.files:
        assert f.status == "missing" and f"missing: {f.path}" in text
    assert {f.path for f in mpii.files} == {tmp_path / "MPII/data" / e.rel for e in dataset_layout("MPII").files_for()}
    assert all(str(c) in mpii.errors[0] for c in dataset_candidates(tmp_path, "MPII"))
    # a config that evaluates on 3DPW-Crowd needs its two files and the images, not the test split
    pw3d, mpii = check_data_root(tmp_path, ["PW3D", "MPII"], None, crowd=True).datasets
    assert {f.path.name for f in pw3d.files} == {"imageFiles", "3DPW_latest_validation.json",
                                                 "3DPW_validation_crowd_hhrnet_result.json"}
    assert {f.path for f in mpii.files} == {tmp_path / "MPII/data" / e.rel for e in dataset_layout("MPII").files_for()}


def test_every_reader_declares_its_layout_and_the_check_reads_it(tmp_path):
    """The registry, the marker and every path `data check` expects come from the reader's own declaration."""
    for name, spec in DATASETS.items():
        layout = dataset_class(name).layout
        assert isinstance(layout, DatasetLayout) and spec.layout is layout, name
        assert spec.folders == layout.folders and spec.written == layout.written and spec.written in spec.folders
        assert spec.marker == layout.files_for()[0].rel and layout.files_for(), name
        for f in layout.files:
            assert layout.path("/d", f.key) == Path("/d", f.rel) and f.what, (name, f.key)
    report = check_data_root(tmp_path, list(DATASETS), None)  # an empty root: every declared path is listed
    rows = {d.name: d for d in report.datasets}
    for name in DATASETS:
        layout, first = dataset_class(name).layout, dataset_candidates(tmp_path, name)[0]
        assert [f.path for f in rows[name].files] == [first / f.rel for f in layout.files_for()], name
        assert rows[name].status == "FAIL", name
    # a variant the config asks for (3DPW-Crowd): the files of its split instead
    pw3d = check_data_root(tmp_path, ["PW3D"], None, crowd=True).datasets[0]
    crowd = dataset_class("PW3D").layout.variants[0]
    assert [f.path for f in pw3d.files] == [
        tmp_path / "PW3D/data" / f.rel for f in dataset_class("PW3D").layout.files_for(crowd.split)]


def test_layouts_hold_the_split_tables():
    h36m, pw3d = dataset_class("Human36M").layout, dataset_class("PW3D").layout
    assert h36m.splits["train"].subjects == (1, 5, 6, 7, 8) and h36m.splits["test"].subjects == (9, 11)
    assert len(h36m.files_for("test")) == 2 * 4 + 1  # 2 subjects x 4 files + images/
    assert pw3d.splits["validation"].sequences == ("courtyard_hug_00", "courtyard_dancing_00")
    assert [f.rel for f in pw3d.own_files("validation")] == [
        "3DPW_latest_validation.json", "3DPW_validation_crowd_hhrnet_result.json"]


class NoLayoutReader(MSCOCO):
    """A reader whose class declares no layout."""

    layout = None  # type: ignore[assignment]


class TinyCoco(MSCOCO):
    """A new dataset: a reader with its own layout (COCO's format in other places)."""

    name = "TinyCoco"
    layout = DatasetLayout(
        folders=("Tiny/data", "tiny"),
        files=(
            DataFile("annotations", "ann/keypoints.json", "tiny keypoints"),
            DataFile("fits", "ann/fits.json", "tiny fits", alternatives=("fits.json",)),
            DataFile("images", "pictures", "tiny images", is_dir=True),
        ),
        images="pictures",
        written="tiny",
    )


def test_a_new_dataset_is_a_reader_and_one_registry_line(written, tmp_path, body_dir, monkeypatch):
    monkeypatch.setitem(DATASETS, "TinyCoco", DatasetSpec(__name__, "TinyCoco"))
    folder = tmp_path / "root" / "tiny"
    shutil.copytree(written / "coco" / "images" / "train2017", folder / "pictures")
    (folder / "ann").mkdir()
    shutil.copy(written / "coco" / "annotations" / "person_keypoints_train2017.json", folder / "ann" / "keypoints.json")
    shutil.copy(written / "coco" / "MSCOCO_train_SMPL_NeuralAnnot.json", folder / "fits.json")  # the alternative place
    assert dataset_root(tmp_path / "root", "TinyCoco") == folder == written_dataset_root(tmp_path / "root", "TinyCoco")
    report = check_data_root(tmp_path / "root", ["TinyCoco"], body_dir, spot_checks=1)
    assert report.exit_code == 0 and report.datasets[0].samples == 2, format_data_report(report)
    assert [f.path for f in report.datasets[0].files] == [folder / "ann/keypoints.json", folder / "fits.json",
                                                          folder / "pictures"]
    (folder / "fits.json").unlink()
    report = check_data_root(tmp_path / "root", ["TinyCoco"], body_dir, spot_checks=1)
    assert report.exit_code == 1 and f"missing: {folder}/ann/fits.json  (tiny fits)" in format_data_report(report)


def test_a_reader_without_a_layout_cannot_be_registered(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "NoLayout", DatasetSpec(__name__, "NoLayoutReader"))
    with pytest.raises(TypeError, match="NoLayoutReader declares no file layout"):
        dataset_class("NoLayout")
    with pytest.raises(TypeError, match="declares no file layout"):
        check_data_root(tmp_path, ["NoLayout"], None)


def test_a_contradictory_layout_is_refused():
    images = DataFile("images", "images", "images", is_dir=True)
    with pytest.raises(ValueError, match="written folder 'b' is not among"):
        DatasetLayout(folders=("a",), files=(images,), written="b")
    with pytest.raises(ValueError, match=r"splits \['val'\] are not in the split table"):
        DatasetLayout(folders=("a",), files=(images, DataFile("x", "x.json", "x", splits=("val",))),
                      splits={"train": None}, default_split="train")
    with pytest.raises(ValueError, match="repeated file keys"):
        DatasetLayout(folders=("a",), files=(images, images))


def test_check_requires_image_folders(written, tmp_path):
    root = arrange(written, tmp_path, "coco", "mpii/data")
    assert "images" in [e.rel for e in dataset_layout("MPII").files_for()]
    assert {"data/augmented_set", "data/unaugmented_set"} <= {e.rel for e in dataset_layout("MuCo").files_for()}
    shutil.rmtree(root / "mpii" / "data" / "images")
    report = check_data_root(root, ["MPII"], None)
    assert report.datasets[0].status == "FAIL"
    assert f"missing: {root}/mpii/data/images  (MPII images)" in format_data_report(report)


def test_every_image_is_checked_and_a_missing_one_fails(tmp_path):
    paths = [str(tmp_path / f"{k:02d}.jpg") for k in range(10)]
    for p in paths[5:]:
        Path(p).write_bytes(b"jpg")
    records = paths + paths[:3]  # an image holds several people
    check = DatasetCheck("MSCOCO", tmp_path, requested=True)
    assert _check_images(check, records, Options()) == set(paths[:5])
    assert (check.images_total, check.images_checked, check.images_missing) == (10, 10, 5)
    assert check.status == "FAIL" and check.errors[0].startswith(
        f"5 of 10 images are missing (checked 10 of 10 image files): {paths[0]}, {paths[1]}, {paths[2]} and 2 more. "
    )
    assert "--allow-missing-images" in check.errors[0]

    allowed = DatasetCheck("MSCOCO", tmp_path, requested=True)
    _check_images(allowed, records, Options(allow_missing_images=True))
    assert allowed.status == "WARN" and not allowed.errors and "5 of 10 images are missing" in allowed.warnings[0]

    sampled = DatasetCheck("MSCOCO", tmp_path, requested=True)  # beyond the limit: a random sample, and it says so
    _check_images(sampled, records, Options(image_limit=4))
    assert (sampled.images_total, sampled.images_checked) == (10, 4)
    assert "(checked 4 of 10 image files, a random sample: at most 4 are checked)" in sampled.errors[0]

    for p in paths[5:]:  # none there: a failure even when missing images are allowed
        Path(p).unlink()
    gone = DatasetCheck("MSCOCO", tmp_path, requested=True)
    _check_images(gone, records, Options(allow_missing_images=True))
    assert gone.status == "FAIL"
    assert gone.errors[0].startswith("none of the images exist (checked 10 of 10 image files)")


def test_check_fails_on_one_missing_image_unless_allowed(written, tmp_path, body_dir):
    root = arrange(written, tmp_path, "coco", "mpii/data")
    (root / "mpii" / "data" / "images" / "b.jpg").unlink()  # MPII sample 13; 10 and 11 are in a.jpg
    report = check_data_root(root, ["MPII"], body_dir, spot_checks=3)
    mpii = report.datasets[0]
    assert report.exit_code == 1 and mpii.status == "FAIL" and mpii.spot_total == 0
    assert f"1 of 2 images are missing (checked 2 of 2 image files): {root}/mpii/data/images/b.jpg." in mpii.errors[0]
    assert re.search(r"^MPII +FAIL +3 +2 +1/2 +- ", format_data_report(report), re.M)
    # allowed: a warning, and the spot checks build the samples whose image is there
    report = check_data_root(root, ["MPII"], body_dir, spot_checks=3, allow_missing_images=True)
    mpii = report.datasets[0]
    assert report.exit_code == 0 and mpii.status == "WARN" and mpii.spot_ok == mpii.spot_total == 2, \
        format_data_report(report)


def broken_body_model(body_dir: Path, folder: Path) -> Path:
    """A copy of the body model whose neutral SMPL file is cut in half; returns that file."""
    shutil.copytree(body_dir, folder)
    smpl = find_smpl_file(folder, "neutral")
    smpl.write_bytes(smpl.read_bytes()[: smpl.stat().st_size // 2])
    return smpl


def test_check_with_a_broken_body_model_says_what_failed(written, pw3d_root, tmp_path, body_dir):
    root = arrange(written, tmp_path, "coco", "mpii/data")
    shutil.copytree(pw3d_root / "PW3D", root / "PW3D")
    smpl = broken_body_model(body_dir, tmp_path / "body")
    report = check_data_root(root, ["MSCOCO", "MPII", "PW3D"], tmp_path / "body", spot_checks=1)
    assert report.exit_code == 1 and report.body_model.status == "FAIL"
    assert report.body_model.error.startswith(f"cannot be loaded: {smpl}: ")
    # the training sets are still loaded and their images checked, but their samples cannot be built;
    # 3DPW's test samples need no body model
    assert [(d.name, d.status) for d in report.datasets] == [
        ("MSCOCO", "BLOCKED"), ("MPII", "BLOCKED"), ("PW3D", "OK"), ("PW3D-Crowd", "OK"),
        ("PW3D-val", "OK")]
    assert report.datasets[1].samples == 3 and report.datasets[1].filter_counts and report.datasets[1].spot_total == 0
    text = format_data_report(report)
    assert re.search(rf"^body model +FAIL +.* {re.escape(str(tmp_path / 'body'))}$", text, re.M), text
    assert re.search(r"^MPII +BLOCKED +3 +2 +2/2 +not run ", text, re.M), text
    assert f"body model (FAIL):\n  error: cannot be loaded: {smpl}: " in text
    assert text.count("not run: the spot checks (they build samples with the body model, which cannot be loaded") == 2
    assert "reader filters:\n  MSCOCO: " in text and text.endswith("result: FAILED (see the errors above)")
    # a training set's own failure still shows as such
    (root / "mpii" / "data" / "annotations" / "train.json").write_text("{")
    assert [d.status for d in check_data_root(root, ["MPII"], tmp_path / "body").datasets] == ["FAIL"]


def test_check_uses_the_body_model_under_the_data_root(written, tmp_path, body_dir):
    root = arrange(written, tmp_path, "coco", "mpii/data")
    report = check_data_root(root, ["MPII"], None, spot_checks=1)
    assert report.body_model is None and report.exit_code == 0
    assert f"note: no body-model folder given (--body-model-dir) and no {root}/body_model: " in \
        format_data_report(report)
    shutil.copytree(body_dir, root / "body_model")  # where `hap3d data synth` writes it
    report = check_data_root(root, ["MPII"], None, spot_checks=1)
    assert report.body_model.folder == root / "body_model" and report.exit_code == 0, format_data_report(report)
    assert f"note: using the body model found under the data root, {root}/body_model" in format_data_report(report)
    assert re.search(rf"^body model +OK +.* {re.escape(str(root))}/body_model$", format_data_report(report), re.M)
    explicit = check_data_root(root, ["MPII"], body_dir, spot_checks=1)  # a given folder wins
    assert explicit.body_model.folder == body_dir and "found under the data root" not in format_data_report(explicit)
    shutil.rmtree(root / "body_model")  # the folder found is the one the samples are built with
    broken_body_model(body_dir, root / "body_model")
    assert check_data_root(root, ["MPII"], None, spot_checks=1).datasets[0].status == "BLOCKED"


@pytest.fixture(scope="module")
def pw3d_root(tmp_path_factory, body_dir) -> Path:
    return Path(write_synthetic_datasets(tmp_path_factory.mktemp("pw3d"), body_dir, size="tiny", datasets=["PW3D"]))


def copy_pw3d(pw3d_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(pw3d_root / "PW3D", root / "PW3D")
    return root


def test_check_loads_3dpw_crowd(pw3d_root, tmp_path):
    root = copy_pw3d(pw3d_root, tmp_path)
    report = check_data_root(root, ["PW3D"], None, spot_checks=1)
    assert [d.name for d in report.datasets] == ["PW3D", "PW3D-Crowd", "PW3D-val"] and report.exit_code == 0, \
        format_data_report(report)
    crowd = report.datasets[1]
    assert crowd.samples and crowd.spot_ok == crowd.spot_total == 1

    validation = root / "PW3D" / "data" / "3DPW_latest_validation.json"
    validation.write_text(validation.read_text()[: len(validation.read_text()) // 2])  # truncated
    report = check_data_root(root, ["PW3D"], None, spot_checks=1)
    assert report.exit_code == 1
    assert [d.status for d in report.datasets] == ["OK", "FAIL", "FAIL"]  # 3DPW-Crowd and the validation split
    assert f"malformed: {validation}" in format_data_report(report)


def test_check_3dpw_crowd_with_one_file(pw3d_root, tmp_path):
    root = copy_pw3d(pw3d_root, tmp_path)
    hhrnet = root / "PW3D" / "data" / "3DPW_validation_crowd_hhrnet_result.json"
    hhrnet.unlink()
    report = check_data_root(root, ["PW3D"], None, spot_checks=1)
    assert report.exit_code == 0 and report.datasets[1].status == "WARN"
    assert str(hhrnet) in report.datasets[1].warnings[0]
    required = check_data_root(root, ["PW3D"], None, spot_checks=1, crowd=True)  # the config evaluates on it
    assert required.exit_code == 1 and f"missing: {hhrnet}" in format_data_report(required)
    (root / "PW3D" / "data" / "3DPW_latest_validation.json").unlink()
    assert [d.name for d in check_data_root(root, ["PW3D"], None, spot_checks=1).datasets] == ["PW3D"]


def test_check_3dpw_crowd_config_does_not_need_the_test_split(pw3d_root, tmp_path, body_dir, capsys):
    root = copy_pw3d(pw3d_root, tmp_path)
    test = root / "PW3D" / "data" / "3DPW_latest_test.json"
    # present: still checked and reported, but not requested
    report = check_data_root(root, ["PW3D"], None, spot_checks=1, crowd=True)
    assert [(d.name, d.requested) for d in report.datasets] == [("PW3D", False), ("PW3D-Crowd", True),
                                                                ("PW3D-val", True)]
    test.write_text(test.read_text()[:100])  # malformed: reported, yet the check passes
    report = check_data_root(root, ["PW3D"], None, spot_checks=1, crowd=True)
    assert [d.status for d in report.datasets] == ["SKIP", "OK", "OK"] and report.exit_code == 0, \
        format_data_report(report)
    # missing: not reported at all; through --cfg as a user runs it
    test.unlink()
    cfg = tmp_path / "crowd.yaml"
    data = {"root": str(root), "body_model_dir": str(body_dir), "trainset_3d": [], "trainset_2d": []}
    cfg.write_text(json.dumps({"data": data | {"crowd": True}}))
    assert cli_main(["data", "check", "--cfg", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^PW3D-Crowd +OK", out, re.M) and not re.search(r"^PW3D ", out, re.M) and str(test) not in out
    # without crowd the test split is what the config evaluates on
    cfg.write_text(json.dumps({"data": data}))
    assert cli_main(["data", "check", "--cfg", str(cfg)]) == 1
    assert f"missing: {test}" in capsys.readouterr().out


def test_check_reference_compat_from_the_command_line_beats_the_config(tmp_path, monkeypatch):
    import hap3d.data.check as check

    seen = []
    monkeypatch.setattr(check, "check_data_root",
                        lambda *a, **kw: seen.append(kw["reference_compat"]) or check.Report(tmp_path, []))
    cfg = tmp_path / "train.yaml"
    cfg.write_text("reference_compat: true\n")
    for flags, expected in (([], True), (["--no-reference-compat"], False), (["--reference-compat"], True)):
        assert cli_main(["data", "check", "--cfg", str(cfg), *flags]) == 0
        assert seen.pop() is expected, flags
    cfg.write_text("reference_compat: false\n")
    assert cli_main(["data", "check", "--cfg", str(cfg)]) == 0 and seen.pop() is False
    assert cli_main(["data", "check", "--cfg", str(cfg), "--reference-compat"]) == 0 and seen.pop() is True
    assert cli_main(["data", "check", "--root", str(tmp_path)]) == 0 and seen.pop() is True  # the reference's readers


def test_check_with_a_training_config(written, tmp_path, body_dir, capsys):
    root = arrange(written, tmp_path, "MSCOCO", "MPII/data")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(json.dumps({
        "data": {"root": str(root), "body_model_dir": str(body_dir), "trainset_3d": [],
                 "trainset_2d": ["MSCOCO", "MPII"], "testset": "PW3D"},
    }))  # fmt: skip
    from hap3d.config import load_config

    assert config_datasets(load_config(cfg)) == ["MSCOCO", "MPII", "PW3D"]
    assert cli_main(["data", "check", "--cfg", str(cfg)]) == 1  # PW3D, the config's test set, is missing
    out = capsys.readouterr().out
    assert re.search(r"MSCOCO +OK", out) and re.search(r"MPII +OK", out) and re.search(r"PW3D +FAIL", out)
    assert "Human36M" not in out
    assert cli_main(["data", "check", "--cfg", str(cfg), "--datasets", "MPII"]) == 0
    assert cli_main(["data", "check"]) == 2  # neither --root nor --cfg
    assert "--root DIR or --cfg CONFIG" in capsys.readouterr().err


def test_cli_synth_sizes():
    """Every size the writer knows is accepted by the CLI; 'large' is a few thousand training samples."""
    parser = build_parser()
    for size in SIZES:
        assert parser.parse_args(["data", "synth", "--out", "x", "--size", size]).size == size
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "synth", "--out", "x", "--size", "huge"])
    large, medium = SIZES["large"], SIZES["medium"]
    # training images of the HAP sets (each MuCo image is one sample; COCO/MPII images hold 1-3 people)
    images = 5 * large["h36m_frames"] * large["h36m_cameras"] + large["muco"] + large["coco"] + large["mpii"]
    assert images >= 2500 and all(large[k] >= medium[k] for k in medium)
