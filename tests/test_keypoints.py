"""The 2D keypoint readers: every supported format to COCO17, per-image errors, and fatal ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hap3d.data.io import DataError
from hap3d.infer.keypoints import read_coco_image_names, read_keypoints

# one person: joint j at (10 j, 100 + j) with score 0.5 + j / 100, so every joint is recognisable
PERSON = np.array([[10 * j, 100 + j, 0.5 + j / 100] for j in range(17)], np.float32)


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_reference_demo_dict(tmp_path):
    extra = np.concatenate([PERSON, np.ones((17, 1), np.float32)], 1)  # x, y, score, extra column: dropped
    kp = read_keypoints(_write(tmp_path / "k.json", {"a.jpg": [PERSON.tolist(), extra.tolist()], "b.jpg": []}))
    assert set(kp) == {"a.jpg", "b.jpg"} and kp.errors == {} and kp["b.jpg"] == []
    assert len(kp["a.jpg"]) == 2
    for person in kp["a.jpg"]:
        np.testing.assert_allclose(person, PERSON)


def test_a_bad_entry_costs_only_its_image(tmp_path):
    data = {"a.png": [[[1, 2, 3]]], "b.png": [PERSON.tolist()], "c.png": {"not": "a list"},
            "d.png": [[[None, 1, 1]] * 17], "e.png": [PERSON.tolist(), [["x", 1, 1]] * 17]}
    kp = read_keypoints(_write(tmp_path / "k.json", data))
    assert list(kp) == ["b.png"]
    np.testing.assert_allclose(kp["b.png"][0], PERSON)
    assert set(kp.errors) == {"a.png", "c.png", "d.png", "e.png"}
    assert "k.json: image a.png person 0: expected 17 keypoints" in kp.errors["a.png"]
    assert "expected a list of people" in kp.errors["c.png"]
    assert "null" in kp.errors["d.png"]
    assert "person 1" in kp.errors["e.png"] and "not a numeric array" in kp.errors["e.png"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ("42", "unrecognised keypoint format"),
    ('[{"keypoints": [0, 0, 0]}]', "neither 'image_id' nor 'file_name'"),
    ('[[1, 2, 3]]', "not an object"),
    ('[{"image_id": [1], "keypoints": []}]', r"detection 0 field 'image_id' is \[1\], expected an image id"),
])
def test_whole_file_problems_are_fatal_and_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        read_keypoints(path)
    assert str(path) in str(err.value)


def test_a_missing_file_is_fatal(tmp_path):
    with pytest.raises(DataError, match="keypoint file not found: .*missing.json"):
        read_keypoints(tmp_path / "missing.json")


def test_coco_results_by_file_name(tmp_path):
    flat = PERSON.ravel().tolist()
    data = [{"file_name": "x.jpg", "category_id": 1, "keypoints": flat, "score": 0.9},
            {"file_name": "x.jpg", "category_id": 1, "keypoints": flat, "score": 0.8},
            {"file_name": "y.jpg", "category_id": 1, "keypoints": flat[:30], "score": 0.8}]
    kp = read_keypoints(_write(tmp_path / "r.json", data))
    assert list(kp) == ["x.jpg"] and len(kp["x.jpg"]) == 2
    np.testing.assert_allclose(kp["x.jpg"][1], PERSON)
    assert "detection 2" in kp.errors["y.jpg"] and "shape (10, 3)" in kp.errors["y.jpg"]


def test_coco_results_by_image_id_with_and_without_annotations(tmp_path):
    flat = PERSON.ravel().tolist()
    results = _write(tmp_path / "r.json", [{"image_id": 397133, "category_id": 1, "keypoints": flat, "score": 1.0},
                                           {"image_id": 5, "category_id": 1, "score": 1.0}])
    kp = read_keypoints(results)
    assert list(kp) == ["397133"], "without annotations the key is the id (the demo matches numeric stems)"
    assert "detection 1 has no field 'keypoints'" in kp.errors["5"]

    ann = _write(tmp_path / "ann.json", {"images": [{"id": 397133, "file_name": "000000397133.jpg"},
                                                    {"id": 7, "file_name": "other.jpg"}], "annotations": []})
    names = read_coco_image_names(ann)
    assert names == {397133: "000000397133.jpg", 7: "other.jpg"}
    kp = read_keypoints(results, names)
    assert list(kp) == ["000000397133.jpg"] and set(kp.errors) == {"5"}, "ids missing from the annotations stay ids"
    np.testing.assert_allclose(kp["000000397133.jpg"][0], PERSON)


@pytest.mark.parametrize("data, message", [
    ([1, 2], "not a COCO annotation file"),
    ({"annotations": []}, "not a COCO annotation file"),
    ({"images": [{"id": 1}]}, r"images\[0\] has no field 'file_name'"),
    ({"images": [{"file_name": "a.jpg"}]}, r"images\[0\] has no field 'id'"),
    ({"images": [{"id": [1], "file_name": "a.jpg"}]}, r"images\[0\] field 'id' is \[1\], expected an image id"),
    ({"images": [{"id": {"n": 1}, "file_name": "a.jpg"}]}, r"images\[0\] field 'id' is \{'n': 1\}"),
])
def test_malformed_coco_annotations(tmp_path, data, message):
    path = _write(tmp_path / "ann.json", data)
    with pytest.raises(DataError, match=message) as err:
        read_coco_image_names(path)
    assert str(path) in str(err.value)


def test_integral_float_ids_are_ids(tmp_path):
    ann = _write(tmp_path / "ann.json", {"images": [{"id": 7.0, "file_name": "seven.jpg"}]})
    assert read_coco_image_names(ann) == {7: "seven.jpg"}
    results = _write(tmp_path / "r.json", [{"image_id": 8.0, "keypoints": PERSON.ravel().tolist()}])
    assert list(read_keypoints(results)) == ["8"], "'8', not '8.0', so that 8.jpg finds it"


def test_image_names_with_a_file_keyed_by_image_name_are_an_error(tmp_path):
    """COCO annotations only map the image_id of COCO results; given with anything else they would do nothing."""
    names = {1: "a.jpg"}
    folder = tmp_path / "openpose"
    folder.mkdir()
    sources = {"a dict by image name": _write(tmp_path / "k.json", {"a.jpg": [PERSON.tolist()]}),
               "OpenPose output": _openpose(folder / "a_keypoints.json", np.ones((25, 3), np.float32))}
    for kind, source in [*sources.items(), ("OpenPose output", folder)]:
        with pytest.raises(DataError, match=f"apply only to COCO keypoint results .* but this is {kind}") as err:
            read_keypoints(source, names)
        assert str(source) in str(err.value)
        assert read_keypoints(source), "without image names the same source reads"


def _openpose(path: Path, *people: np.ndarray) -> Path:
    return _write(path, {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p.ravel().tolist()}
                                                    for p in people]})


def test_openpose_body25_and_coco18_map_to_coco17(tmp_path):
    # joint j of the OpenPose array at x = j, so the COCO17 x values name the OpenPose joints they came from
    body25 = np.array([[j, 0, 1] for j in range(25)], np.float32)
    coco18 = np.array([[j, 0, 1] for j in range(18)], np.float32)
    # COCO17 order: nose, L/R eye, L/R ear, L/R shoulder, L/R elbow, L/R wrist, L/R hip, L/R knee, L/R ankle
    from_body25 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    from_coco18 = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]

    single = read_keypoints(_openpose(tmp_path / "photo_keypoints.json", body25, coco18))
    assert list(single) == ["photo"]
    np.testing.assert_array_equal(single["photo"][0][:, 0], from_body25)
    np.testing.assert_array_equal(single["photo"][1][:, 0], from_coco18)

    folder = tmp_path / "openpose"
    folder.mkdir()
    _openpose(folder / "a_keypoints.json", body25)
    _openpose(folder / "b_keypoints.json", coco18)
    _openpose(folder / "c_keypoints.json")
    _openpose(folder / "d_keypoints.json", np.zeros((20, 3), np.float32))
    (folder / "e_keypoints.json").write_text("{truncated")
    _write(folder / "f_keypoints.json", {"people": "nobody"})
    (folder / "notes.txt").write_text("ignored")
    kp = read_keypoints(folder)
    assert list(kp) == ["a", "b", "c"] and kp["c"] == []
    np.testing.assert_array_equal(kp["a"][0][:, 0], from_body25)
    np.testing.assert_array_equal(kp["b"][0][:, 0], from_coco18)
    assert "60 values; expected BODY_25 (75) or COCO-18 (54)" in kp.errors["d"]
    assert "invalid JSON" in kp.errors["e"] and "e_keypoints.json" in kp.errors["e"]
    assert "'people' list" in kp.errors["f"]

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no OpenPose"):
        read_keypoints(empty)
