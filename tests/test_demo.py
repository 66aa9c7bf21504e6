"""`hap3d demo` end to end on a public-domain photo (scikit-image's astronaut) with a project-made checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from hap3d.body.joints import get_joint_set
from hap3d.cli import main as cli_main
from hap3d.config import ModelConfig
from hap3d.data.io import DataError
from hap3d.infer import demo
from hap3d.infer.demo import KeypointMatcher, folder_names, frame_count, run_demo
from hap3d.infer.keypoints import BODY25, read_keypoints
from hap3d.infer.predictor import Predictor
from hap3d.model import build_model
from hap3d.model.checkpoint import save_model_checkpoint
from hap3d.render import Camera, rasterize

from conftest import TINY_VIT

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the public-domain test photo")
KEYPOINTS = Path(__file__).with_name("data") / "astronaut_keypoints.json"
PERSON = np.asarray(json.loads(KEYPOINTS.read_text())["astronaut.png"][0], np.float32)  # (17, 3), fits the photo


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, body_dir):
    """A tiny random network and its checkpoint (the pipeline, not the meshes, is under test)."""
    model = build_model(ModelConfig(**TINY_VIT), body_dir)
    return model, save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, model.cfg)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, body_dir, tiny):
    root = tmp_path_factory.mktemp("demo")
    images = root / "images"
    images.mkdir()
    photo = skimage_data.astronaut()
    cv2.imwrite(str(images / "astronaut.png"), photo[:, :, ::-1])
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ckpt = tiny[1]
    out = root / "out"
    code = cli_main(["demo", str(images), "--keypoints", str(KEYPOINTS), "--ckpt", str(ckpt),
                     "--body-model-dir", str(body_dir), "--out", str(out), "--device", "cpu", "--backend", "raster"])
    return code, out, photo


def test_exit_code_and_summary_report_each_item(demo_run):
    code, out, _ = demo_run
    assert code == 1, "missing and corrupt inputs must make the exit code non-zero"
    summary = json.loads((out / "summary.json").read_text())
    items = {i["name"]: i for i in summary["items"]}
    assert items["astronaut.png"]["people"] == 1 and items["astronaut.png"]["error"] is None
    assert "below" in items["astronaut.png"]["skipped"][0]["reason"]
    assert "cannot be decoded" in items["corrupt.jpg"]["error"]
    assert "not among the inputs" in items["missing_photo.jpg"]["error"]


def test_meshes_load_with_the_right_sizes(demo_run):
    _, out, _ = demo_run
    for ext in ("obj", "ply", "glb"):
        mesh = trimesh.load(out / "astronaut" / f"person_0.{ext}", force="mesh", process=False, maintain_order=True)
        assert mesh.vertices.shape == (6890, 3) and mesh.faces.shape == (13776, 3), ext


def test_json_and_npz_keys(demo_run):
    _, out, _ = demo_run
    rec = json.loads((out / "astronaut" / "person_0.json").read_text())
    assert np.asarray(rec["smpl_pose"]).shape == (72,) and np.asarray(rec["smpl_shape"]).shape == (10,)
    assert np.asarray(rec["joints2d"]).shape == (30, 2) and np.asarray(rec["cam_trans"]).shape == (3,)
    npz = np.load(out / "astronaut" / "person_0.npz")
    assert npz["vertices"].shape == (6890, 3) and npz["joints3d"].shape == (30, 3)


def test_overlay_changes_exactly_the_mesh_pixels(demo_run, body_dir):
    _, out, photo = demo_run
    overlay = cv2.imread(str(out / "astronaut" / "overlay.png"))[:, :, ::-1]
    npz = np.load(out / "astronaut" / "person_0.npz")
    cam = Camera(float(npz["focal"]), float(npz["focal"]), *map(float, npz["princpt"]))
    faces = build_model(ModelConfig(**TINY_VIT), body_dir).smpl.faces.numpy()
    depth, _ = rasterize(npz["vertices"], faces, cam, *photo.shape[:2])
    covered = np.isfinite(depth)
    changed = np.any(overlay != photo, axis=2)
    assert covered.sum() > 500, "the person should be visible in the photo"
    assert not np.any(changed & ~covered), "pixels outside the mesh must be untouched"
    assert changed[covered].mean() > 0.95
    assert (out / "astronaut" / "side.png").is_file()


# ---- inputs, keypoint matching, batching and reporting ----


def _save(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def _cli(tiny, body_dir, src: Path, out: Path, *extra: str) -> int:
    return cli_main(["demo", str(src), "--ckpt", str(tiny[1]), "--body-model-dir", str(body_dir), "--out", str(out),
                     "--device", "cpu", "--backend", "raster", *extra])


def _items(out: Path) -> dict[str, dict]:
    return {i["name"]: i for i in json.loads((out / "summary.json").read_text())["items"]}


def test_predictor_is_exported_from_the_package():
    import hap3d.infer
    from hap3d.infer import Predictor as Exported
    from hap3d.infer import load_predictor_model

    assert Exported is Predictor and load_predictor_model is hap3d.infer.predictor.load_predictor_model


def test_keypoint_matcher_finds_names_stems_coco_ids_and_padded_frames():
    images = KeypointMatcher(["a.jpg", "b", "397133", "sub/c.png"])
    assert images.find("a.jpg") == "a.jpg" and images.find("b.png") == "b" and images.find("c.png") == "sub/c.png"
    assert images.find("000000397133.jpg") == "397133"
    assert images.find("x.jpg") is None and images.used == {"a.jpg", "b", "397133", "sub/c.png"}
    assert KeypointMatcher(["a.png", "a"]).find("a.jpg") == "a", "an exact stem beats another file's stem"
    assert KeypointMatcher(["sub/c.png", "c.png"]).find("c.png") == "c.png", "the full key beats its last part"
    frames = KeypointMatcher(["clip_000000000012", "clip_3.jpg", "clip_000001", "other_000002"], video_stem="clip")
    assert frames.find("clip_000012") == "clip_000000000012" and frames.find("clip_000003") == "clip_3.jpg"
    assert frames.find("clip_000001") == "clip_000001" and frames.find("clip_000002") is None
    dotted = KeypointMatcher(["my.clip_000000000004"], video_stem="my.clip")
    assert dotted.find("my.clip_000004") == "my.clip_000000000004"


def test_keypoint_matcher_never_hands_one_file_s_people_to_another():
    assert KeypointMatcher(["a.png"]).find("a.jpg") is None, "a key with a suffix names that file only"
    assert KeypointMatcher(["1.jpg"]).find("01.png") is None, "ids are suffix-less digit keys"
    assert KeypointMatcher(["001"]).find("1.png") == "001" and KeypointMatcher(["a1"]).find("1.png") is None
    shared = KeypointMatcher(["1", "2.png"], items=["1.jpg", "01.jpg", "2.png"])
    for item in ("1.jpg", "01.jpg"):
        with pytest.raises(DataError, match=r"keypoint entry '1' matches several inputs \(1.jpg, 01.jpg\)"):
            shared.find(item)
    assert shared.find("2.png") == "2.png" and shared.used == {"1", "2.png"}, "reported above, not as unused"
    with pytest.raises(DataError, match="several keypoint entries match this item: '01', '1'"):
        KeypointMatcher(["01", "1"]).find("001.jpg")
    with pytest.raises(DataError, match="several keypoint entries match this item: 'clip_3.jpg', 'clip_0003'"):
        KeypointMatcher(["clip_3.jpg", "clip_0003"], video_stem="clip").find("clip_000003")


def test_keypoint_matcher_reads_only_ascii_digits_as_numbers():
    """'²'.isdigit() is True but int('²') raises: such names are names, not ids or frame indices."""
    assert KeypointMatcher(["x"]).find("²³.png") is None and KeypointMatcher(["²"]).find("².png") == "²"
    assert KeypointMatcher(["clip_²"], video_stem="clip").find("clip_000002") is None
    assert KeypointMatcher(["clip_000002"], video_stem="clip").find("clip_²") is None


def test_folder_names_are_distinct_ignoring_case():
    names = ["Photo.JPG", "photo.jpg", "A.png", "a.jpg", "summary.json.png", "photo.jpg_2.png", "b.png"]
    assert folder_names([Path(n) for n in names]) == [
        "Photo.JPG", "photo.jpg_3", "A.png", "a.jpg", "summary.json.png", "photo.jpg_2", "b"]


def test_inputs_that_would_share_a_folder_get_their_own(tiny, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    photo = skimage_data.astronaut()
    keypoints = {}
    for i, name in enumerate(("a.jpg", "a.png", "a.jpg.png")):
        _save(images / name, photo)
        keypoints[name] = [PERSON + np.array([8 * i, 0, 0], np.float32)]
    code, reports = run_demo(Predictor(tiny[0], "cpu", amp="none"), images, keypoints, tmp_path / "out",
                             formats=(), backend="raster", progress=False)
    assert code == 0
    assert {r.name: r.output_dir for r in reports} == {"a.jpg": "a.jpg", "a.png": "a.png", "a.jpg.png": "a.jpg.png"}
    for name, people in keypoints.items():
        npz = np.load(tmp_path / "out" / name / "person_0.npz")
        np.testing.assert_array_equal(npz["input_keypoints"], people[0], err_msg=name)


def test_run_demo_reports_ambiguous_and_suffix_mismatched_keys(tiny, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "1.jpg", "01.jpg"):
        _save(images / name, skimage_data.astronaut())
    code, reports = run_demo(Predictor(tiny[0], "cpu", amp="none"), images, {"a.png": [PERSON], "1": [PERSON]},
                             tmp_path / "out", formats=(), backend="raster", progress=False)
    errors = {r.name: r.error for r in reports}
    assert code == 1 and all(r.status == "failed" and r.people == 0 for r in reports)
    assert errors == {
        "01.jpg": "keypoint entry '1' matches several inputs (01.jpg, 1.jpg), so it is used for none of them; "
                  "key it by the full file name of the image it belongs to",
        "1.jpg": errors["01.jpg"],
        "a.jpg": "no keypoints for this image in the keypoint file",
        "a.png": "keypoints given for an image that is not among the inputs",
    }
    assert not (tmp_path / "out" / "1").exists() and not (tmp_path / "out" / "01").exists()


def test_coco_results_match_numeric_stems_or_the_annotations(tiny, body_dir, tmp_path, capsys):
    images = tmp_path / "val2017"
    images.mkdir()
    _save(images / "000000397133.jpg", skimage_data.astronaut())
    det = {"category_id": 1, "keypoints": PERSON.ravel().tolist(), "score": 0.9}
    by_id = tmp_path / "results.json"
    by_id.write_text(json.dumps([{"image_id": 397133, **det}]))
    assert _cli(tiny, body_dir, images, tmp_path / "o1", "--keypoints", str(by_id), "--formats", "") == 0
    assert _items(tmp_path / "o1")["000000397133.jpg"]["people"] == 1
    assert (tmp_path / "o1" / "000000397133" / "person_0.npz").is_file()

    other_id = tmp_path / "results_other_ids.json"
    other_id.write_text(json.dumps([{"image_id": 7, **det}]))
    ann = tmp_path / "person_keypoints_val2017.json"
    ann.write_text(json.dumps({"images": [{"id": 7, "file_name": "000000397133.jpg"}], "annotations": []}))
    assert _cli(tiny, body_dir, images, tmp_path / "o2", "--keypoints", str(other_id), "--coco-annotations",
                str(ann), "--formats", "") == 0
    assert _items(tmp_path / "o2")["000000397133.jpg"]["people"] == 1
    assert _cli(tiny, body_dir, images, tmp_path / "o4", "--keypoints", str(KEYPOINTS), "--coco-annotations",
                str(ann)) == 2, "annotations with keypoints keyed by image name would be silently unused"
    assert "apply only to COCO keypoint results" in capsys.readouterr().err

    ann.write_text(json.dumps({"images": [{"id": 7, "name": "000000397133.jpg"}]}))
    assert _cli(tiny, body_dir, images, tmp_path / "o3", "--keypoints", str(other_id), "--coco-annotations",
                str(ann)) == 2
    err = capsys.readouterr().err
    assert str(ann) in err and "images[0] has no field 'file_name'" in err


def test_a_bad_keypoint_entry_fails_only_its_image(tiny, body_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        _save(images / name, skimage_data.astronaut())
    kp = tmp_path / "kp.json"
    kp.write_text(json.dumps({"a.png": [[[1, 2, 3]]], "b.png": [PERSON.tolist()]}))
    assert _cli(tiny, body_dir, images, tmp_path / "out", "--keypoints", str(kp), "--formats", "") == 1
    items = _items(tmp_path / "out")
    assert items["a.png"]["status"] == "failed" and items["a.png"]["error"].startswith("no keypoints: ")
    assert "person 0: expected 17 keypoints" in items["a.png"]["error"]
    assert items["b.png"]["status"] == "ok" and items["b.png"]["people"] == 1

    kp.write_text("not json at all")
    assert _cli(tiny, body_dir, images, tmp_path / "out2", "--keypoints", str(kp)) == 2
    assert f"{kp}: invalid JSON" in capsys.readouterr().err


def test_unreconstructable_people_get_their_reasons(tiny, body_dir, tmp_path):
    photo = skimage_data.astronaut()
    images = tmp_path / "images"
    images.mkdir()
    for name in ("one_joint.png", "outside.png", "nobody.png"):
        _save(images / name, photo)
    one_joint = np.zeros((17, 3), np.float32)
    one_joint[0] = (222, 125, 1.0)  # total score 1.0 passes, but one point makes no box
    outside = PERSON + np.array([2000, 2000, 0], np.float32)
    keypoints = {"one_joint.png": [one_joint], "outside.png": [outside], "nobody.png": []}
    predictor = Predictor(tiny[0], "cpu", amp="none")
    code, reports = run_demo(predictor, images, keypoints, tmp_path / "out", formats=(), backend="raster",
                             progress=False)
    errors = {r.name: r.error for r in reports}
    assert code == 1 and all(r.status == "failed" for r in reports)
    assert errors["one_joint.png"].startswith("no person could be reconstructed: person 0: too few valid keypoints")
    assert errors["outside.png"] == ("no person could be reconstructed: "
                                     "person 0: the keypoints' box lies outside the image")
    assert errors["nobody.png"] == "no person in the keypoint file"
    overlay = cv2.imread(str(tmp_path / "out" / "nobody" / "overlay.png"))[:, :, ::-1]
    np.testing.assert_array_equal(overlay, photo)


def test_images_sharing_a_stem_keep_separate_outputs(tiny, body_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    photo = skimage_data.astronaut()
    for name in ("a.jpg", "a.png", "b.png"):
        _save(images / name, photo)
    shifted = PERSON + np.array([8, 0, 0], np.float32)
    keypoints = {"a.jpg": [PERSON], "a.png": [shifted], "b": [PERSON]}
    code, reports = run_demo(Predictor(tiny[0], "cpu", amp="none"), images, keypoints, tmp_path / "out",
                             formats=(), backend="raster", progress=False)
    assert code == 0 and {r.name: r.output_dir for r in reports} == {"a.jpg": "a.jpg", "a.png": "a.png", "b.png": "b"}
    first, second = (np.load(tmp_path / "out" / d / "person_0.npz") for d in ("a.jpg", "a.png"))
    np.testing.assert_array_equal(first["input_keypoints"], PERSON)
    np.testing.assert_array_equal(second["input_keypoints"], shifted)


def _folder_of_people(root: Path, n: int) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """``n`` different one-person images (the photo shifted), so a mix-up between items would show."""
    images = root / "images"
    images.mkdir()
    photo = skimage_data.astronaut()
    keypoints = {}
    for i in range(n):
        _save(images / f"img_{i}.png", np.roll(photo, 12 * i, axis=1))
        keypoints[f"img_{i}.png"] = [PERSON + np.array([12 * i, 0, 0], np.float32)]
    return images, keypoints


def test_people_of_several_images_share_one_forward(tiny, tmp_path):
    images, keypoints = _folder_of_people(tmp_path, 3)
    model = tiny[0]
    calls: list[int] = []
    hook = model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        outputs = {}
        for batch_size in (64, 1):
            calls.clear()
            out = tmp_path / f"batch_{batch_size}"
            code, reports = run_demo(Predictor(model, "cpu", amp="none", batch_size=batch_size), images, keypoints,
                                     out, formats=(), backend="raster", progress=False)
            assert code == 0 and [r.people for r in reports] == [1, 1, 1]
            assert calls == ([3] if batch_size == 64 else [1, 1, 1])
            outputs[batch_size] = {n: np.load(out / f"img_{n}" / "person_0.npz") for n in range(3)}
    finally:
        hook.remove()
    for n in range(3):
        for key in ("vertices", "joints2d", "cam_trans", "smpl_pose"):
            np.testing.assert_allclose(outputs[64][n][key], outputs[1][n][key], rtol=1e-4, atol=1e-4)


def test_a_failing_batch_is_retried_item_by_item(tiny, tmp_path, monkeypatch):
    images, keypoints = _folder_of_people(tmp_path, 3)
    _save(images / "img_1.png", np.zeros((512, 512, 3), np.uint8))  # a black crop makes the forward "fail"
    (images / "img_3.png").write_bytes(b"broken")
    keypoints["img_3.png"] = [PERSON]
    predictor = Predictor(tiny[0], "cpu", amp="none", batch_size=64)
    run_prepared = predictor.run_prepared
    batches: list[int] = []

    def fragile(prepared):
        batches.append(len(prepared))
        if any(p.img.max() == 0 for p in prepared):
            raise RuntimeError("simulated failure on a black crop")
        return run_prepared(prepared)

    monkeypatch.setattr(predictor, "run_prepared", fragile)
    code, reports = run_demo(predictor, images, keypoints, tmp_path / "out", formats=(), backend="raster",
                             progress=False)
    by_name = {r.name: r for r in reports}
    assert code == 1 and batches == [3, 1, 1, 1], "one batched try, then each item alone"
    assert by_name["img_1.png"].error == "RuntimeError: simulated failure on a black crop"
    assert by_name["img_0.png"].people == 1 and by_name["img_2.png"].people == 1
    assert "cannot be decoded" in by_name["img_3.png"].error
    assert (tmp_path / "out" / "img_2" / "person_0.npz").is_file()


def _body25(coco17: np.ndarray) -> np.ndarray:
    """A COCO17 person as OpenPose BODY_25 (the joints COCO17 lacks stay zero)."""
    out = np.zeros((25, 3), np.float32)
    for i, name in enumerate(get_joint_set("coco17").joints):
        out[BODY25.index(name)] = coco17[i]
    return out


def _video(path: Path, frames: int) -> Path:
    """An MJPG .avi of the photo, ``frames`` frames long (skips the test where OpenCV has no codec for it)."""
    photo = skimage_data.astronaut()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, photo.shape[1::-1])
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write MJPG .avi here (no codec)")
    for _ in range(frames):
        writer.write(photo[:, :, ::-1])
    writer.release()
    try:
        readable = frame_count(path) == frames
    except DataError:
        readable = False
    if not readable:
        pytest.skip("OpenCV cannot read back the MJPG .avi it wrote")
    return path


def test_video_with_openpose_keypoints(tiny, body_dir, tmp_path):
    video = _video(tmp_path / "clip.avi", 3)
    openpose = tmp_path / "openpose"  # OpenPose on a video: 12-digit frame numbers; nobody found in frame 1
    openpose.mkdir()
    for i in (0, 2):
        person = {"pose_keypoints_2d": _body25(PERSON).ravel().tolist()}
        (openpose / f"clip_{i:012d}_keypoints.json").write_text(json.dumps({"people": [person]}))
    assert read_keypoints(openpose).errors == {}
    out = tmp_path / "out"
    assert _cli(tiny, body_dir, video, out, "--keypoints", str(openpose), "--formats", "obj") == 0
    summary = json.loads((out / "summary.json").read_text())
    items = {i["name"]: i for i in summary["items"]}
    assert list(items) == ["clip_000000", "clip_000001", "clip_000002"]
    assert items["clip_000001"]["status"] == "skipped" and items["clip_000001"]["error"] is None
    assert items["clip_000001"]["note"] == "no keypoints for this frame"
    assert summary["num_failed"] == 0 and summary["num_skipped"] == 1 and summary["num_people"] == 2
    for name in ("clip_000000", "clip_000002"):
        assert items[name]["status"] == "ok" and (out / name / "person_0.obj").is_file()
    assert not (out / "clip_000001").exists()


def test_bf16_run_is_finite_and_summary_records_the_settings(tiny, body_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _save(images / "astronaut.png", skimage_data.astronaut())
    out = tmp_path / "out"
    assert _cli(tiny, body_dir, images, out, "--keypoints", str(KEYPOINTS), "--amp", "bf16", "--batch-size", "4",
                "--formats", "obj,obj") == 1  # the keypoint file also lists two images not among the inputs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == {"checkpoint": str(tiny[1].resolve()), "body_model_dir": str(body_dir.resolve()),
                                   "amp": "bf16", "device": "cpu", "batch_size": 4, "formats": ["obj"]}
    item = summary["items"][0]
    assert item["name"] == "astronaut.png" and item["status"] == "ok"
    assert item["outputs"] == ["overlay.png", "side.png", "person_0.obj", "person_0.npz", "person_0.json"]
    npz = np.load(out / "astronaut" / "person_0.npz")
    for key in ("vertices", "joints3d", "joints2d", "smpl_pose", "smpl_shape", "cam_trans", "joint_score"):
        assert np.isfinite(npz[key]).all(), key
    assert not (out / "astronaut" / "person_0.ply").exists()


def test_a_frame_whose_people_are_all_filtered_out_is_skipped_not_failed(tiny, tmp_path):
    video = _video(tmp_path / "clip.avi", 3)
    unsure = PERSON * np.array([1, 1, 0.01], np.float32)  # total score far below 1
    keypoints = {"clip_000000": [PERSON], "clip_000001": [unsure]}
    predictor = Predictor(tiny[0], "cpu", amp="none")
    code, reports = run_demo(predictor, video, keypoints, tmp_path / "out", formats=(), backend="raster",
                             progress=False)
    by_name = {r.name: r for r in reports}
    assert code == 0 and by_name["clip_000000"].status == "ok" and by_name["clip_000002"].status == "skipped"
    frame = by_name["clip_000001"]
    assert frame.status == "skipped" and frame.error is None and frame.people == 0
    assert frame.note == "nobody to reconstruct: person 0: total keypoint score below 1.0"
    assert frame.skipped == [{"person": 0, "reason": "total keypoint score below 1.0"}]
    assert not (tmp_path / "out" / "clip_000001").exists()

    images = tmp_path / "images"
    images.mkdir()
    _save(images / "unsure.png", skimage_data.astronaut())
    code, reports = run_demo(predictor, images, {"unsure.png": [unsure]}, tmp_path / "out_img", formats=(),
                             backend="raster", progress=False)
    assert code == 1 and reports[0].status == "failed", "an image that yields nobody still fails"


def test_keys_beyond_the_last_frame_fail_the_run(tiny, tmp_path):
    """Frames count from 0: keys of frames extracted by ffmpeg (from 1) run one past the end."""
    video = _video(tmp_path / "clip.avi", 2)
    keypoints = {"clip_0001.jpg": [PERSON], "clip_0002.jpg": [PERSON]}
    code, reports = run_demo(Predictor(tiny[0], "cpu", amp="none"), video, keypoints, tmp_path / "out", formats=(),
                             backend="raster", progress=False)
    by_name = {r.name: r for r in reports}
    assert code == 1 and by_name["clip_000000"].status == "skipped" and by_name["clip_000001"].people == 1
    assert by_name["clip_0002.jpg"].error == ("keypoints given for no frame of clip.avi (frames are "
                                              "'clip_<index>', counting from 0)")


def _keypoint_json(path: Path, keypoints: dict[str, list[np.ndarray]]) -> Path:
    path.write_text(json.dumps({k: [p.tolist() for p in v] for k, v in keypoints.items()}))
    return path


def test_ctrl_c_still_writes_the_summary_of_what_was_done(tiny, body_dir, tmp_path, monkeypatch):
    images, keypoints = _folder_of_people(tmp_path, 3)
    load = demo.load_image_rgb

    def interrupted_on_the_third(path):
        if path.name == "img_2.png":
            raise KeyboardInterrupt
        return load(path)

    monkeypatch.setattr(demo, "load_image_rgb", interrupted_on_the_third)
    out = tmp_path / "out"
    assert _cli(tiny, body_dir, images, out, "--keypoints", str(_keypoint_json(tmp_path / "kp.json", keypoints)),
                "--batch-size", "1", "--formats", "") == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["error"] == "KeyboardInterrupt"
    items = {i["name"]: i for i in summary["items"]}
    assert list(items) == ["img_0.png", "img_1.png", "img_2.png"] and summary["num_people"] == 2
    assert items["img_0.png"]["status"] == items["img_1.png"]["status"] == "ok"
    assert items["img_2.png"]["error"] == "not finished: the run stopped before this item was written"


def test_a_video_that_stops_reading_still_writes_the_summary(tiny, body_dir, tmp_path, monkeypatch):
    photo = skimage_data.astronaut()

    def breaks_after_two_frames(path):
        yield "clip_000000", photo
        yield "clip_000001", photo
        raise DataError(f"cannot read {path} on")

    monkeypatch.setattr(demo, "video_frames", breaks_after_two_frames)
    monkeypatch.setattr(demo, "frame_count", lambda path: None)  # the container declares no frame count
    out = tmp_path / "out"
    kp = _keypoint_json(tmp_path / "kp.json", {"clip_000000": [PERSON], "clip_000001": [PERSON]})
    assert _cli(tiny, body_dir, tmp_path / "clip.mp4", out, "--keypoints", str(kp)) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["error"] == f"DataError: cannot read {tmp_path / 'clip.mp4'} on"
    assert [i["error"] for i in summary["items"]] == ["not finished: the run stopped before this item was written"] * 2
    assert summary["num_people"] == 0, "both frames were still waiting for their batched forward"


def test_a_finished_run_says_it_was_not_interrupted(demo_run):
    summary = json.loads((demo_run[1] / "summary.json").read_text())
    assert summary["interrupted"] is False and summary["error"] is None


def test_people_of_an_item_that_failed_to_write_are_not_counted(tiny, tmp_path, monkeypatch):
    images, keypoints = _folder_of_people(tmp_path, 3)
    write = demo.write_item

    def disk_full_for_img_1(out, *args):
        if out.name == "img_1":
            raise OSError("disk full")
        return write(out, *args)

    monkeypatch.setattr(demo, "write_item", disk_full_for_img_1)
    code, reports = run_demo(Predictor(tiny[0], "cpu", amp="none"), images, keypoints, tmp_path / "out", formats=(),
                             backend="raster", progress=False)
    assert code == 1 and [r.people for r in reports] == [1, 0, 1]
    assert reports[1].error == "OSError: disk full"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["num_people"] == 2


def test_a_predictor_returning_the_wrong_number_of_results_fails_its_items(tiny, tmp_path, monkeypatch):
    images, keypoints = _folder_of_people(tmp_path, 2)
    predictor = Predictor(tiny[0], "cpu", amp="none")
    run_prepared = predictor.run_prepared
    monkeypatch.setattr(predictor, "run_prepared", lambda prepared: run_prepared(prepared)[:-1])
    code, reports = run_demo(predictor, images, keypoints, tmp_path / "out", formats=(), backend="raster",
                             progress=False)
    assert code == 1 and [r.people for r in reports] == [0, 0]
    for r in reports:
        assert r.error == ("RuntimeError: internal error: the predictor returned 0 results (person indices []) for "
                           "1 crops (person indices [0]); results cannot be matched to their images")


def test_run_demo_reports_bad_keypoint_entries_without_being_told(tiny, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _save(images / "a.png", skimage_data.astronaut())
    (tmp_path / "kp.json").write_text(json.dumps({"a.png": [[[1, 2, 3]]]}))
    keypoints = read_keypoints(tmp_path / "kp.json")
    code, reports = run_demo(Predictor(tiny[0], "cpu", amp="none"), images, keypoints, tmp_path / "out",
                             formats=(), backend="raster", progress=False)
    assert code == 1 and reports[0].error.startswith("no keypoints: ") and "expected 17 keypoints" in reports[0].error


def test_batch_size_must_be_positive(tiny):
    with pytest.raises(ValueError, match="batch_size must be a positive number of crops per forward, got 0"):
        Predictor(tiny[0], "cpu", batch_size=0)


def test_predictor_faces_are_computed_once(tiny):
    predictor = Predictor(tiny[0], "cpu")
    assert isinstance(predictor.faces, np.ndarray) and predictor.faces is predictor.faces
    assert predictor.faces.shape == (13776, 3)


@pytest.mark.parametrize("args, message", [
    (["--ckpt", "x.safetensors", "--formats", "obj,fbx"], "unknown mesh format(s): fbx; valid: obj, ply, glb"),
    (["--ckpt", "x.safetensors", "--batch-size", "0"], "argument --batch-size: expected a positive integer, got 0"),
    (["--ckpt", "x.safetensors", "--batch-size", "-3"], "argument --batch-size: expected a positive integer, got -3"),
    (["--ckpt", "x.safetensors", "--random-weights"], "argument --random-weights: not allowed with argument --ckpt"),
    ([], "one of the arguments --ckpt --random-weights is required"),
])
def test_demo_arguments_are_checked_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as err:
        cli_main(["demo", str(tmp_path), "--keypoints", "k.json", *args])
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_checkpoint_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(["demo", str(tmp_path), "--keypoints", str(KEYPOINTS), "--ckpt", str(tmp_path / "nope.safetensors"),
                     "--out", str(out)])
    assert code == 2 and f"checkpoint not found: {tmp_path / 'nope.safetensors'} (--ckpt)" in capsys.readouterr().err
    assert not out.exists(), "no procedural body model (or anything else) was written"


def test_a_config_passed_as_checkpoint_gets_our_message(tmp_path, body_dir, capsys):
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("train:\n  lr: 0.001\n")
    code = cli_main(["demo", str(tmp_path), "--keypoints", str(KEYPOINTS), "--ckpt", str(yaml_file),
                     "--body-model-dir", str(body_dir), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"{yaml_file}: not a checkpoint hap3d can read" in err and "never unpickles" in err
    assert "weights_only" not in err


def test_a_run_checkpoint_brings_its_body_model(tmp_path, body_dir, tiny, capsys):
    """Without --body-model-dir, a checkpoint in <run>/checkpoints/ is shown on the body model of its run's config
    (the one it was trained with), not on the procedural stand-in."""
    import shutil

    import yaml

    from hap3d.config import Config, DataConfig, to_dict

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = Path(shutil.copy(tiny[1], run / "checkpoints" / "epoch_0.safetensors"))
    cfg = Config(model=tiny[0].cfg, data=DataConfig(body_model_dir=str(body_dir)))
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    out = tmp_path / "out"
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "astronaut.png"), skimage_data.astronaut()[:, :, ::-1])
    code = cli_main(["demo", str(images), "--keypoints", str(KEYPOINTS), "--ckpt", str(ckpt), "--out", str(out),
                     "--device", "cpu", "--backend", "raster"])
    printed = capsys.readouterr()
    assert code == 1 and _items(out)["astronaut.png"]["people"] == 1, printed.err  # 1: the file's other images
    assert f"body model: {body_dir} (data.body_model_dir of the checkpoint's run" in printed.out
    assert "procedural" not in printed.err and not (out / "procedural_body_model").exists()
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["body_model_dir"] == str(Path(body_dir).resolve())


def test_a_video_that_cannot_be_opened_is_one_clear_error(tiny, body_dir, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not a video at all")
    assert _cli(tiny, body_dir, video, tmp_path / "out", "--keypoints", str(KEYPOINTS)) == 2
    err = capsys.readouterr().err
    assert f"cannot open video: {video}" in err and "Traceback" not in err and "frame/s" not in err
