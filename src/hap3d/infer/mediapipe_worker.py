"""MediaPipe BlazePose worker for :mod:`hap3d.infer.detect`, run by file path in a separate interpreter.

MediaPipe pins ``numpy<2`` and ``protobuf<5``, so it usually lives in its own venv where hap3d is not installed:
this file therefore imports only the standard library, numpy and mediapipe. It loads the model once and serves
a whole batch over a line protocol:

* stdin, per image: one JSON line ``{"shape": [H, W]}`` followed by H*W*3 bytes of RGB uint8 pixels;
* stdout: first ``{"ready": true, "mediapipe": VERSION, "landmarks": [33 PoseLandmark names]}``, then per image
  one JSON line: ``{"landmarks": [[x_px, y_px, visibility] x 33]}`` or ``{"landmarks": null}`` (nobody found) in
  the single-person mode; ``{"people": [[[x_px, y_px, visibility] x 33] per candidate]}`` in the multi-person
  mode; or ``{"error": "..."}`` (this image failed; the worker goes on).

Single person (``"mode": "single"``): the legacy ``mp.solutions.pose`` with ``model_complexity=1``, whose model
ships inside the wheel (0 and 2 are downloaded at run time). Multi person (``"mode": "multi"``): the Tasks
``PoseLandmarker`` with ``num_poses``, from a model bundle built in memory out of the two models the wheel ships
for the legacy graph (``pose_detection.tflite``, the BlazePose person detector, and ``pose_landmark_full.tflite``).
Those files carry no Tasks metadata, so the input normalisation the legacy graph uses ([-1, 1] for the detector,
[0, 1] for the landmarks) is written into them here. The detector sees the image letterboxed to 224x224, where
people in a wide picture become small, so a wide image is also run in overlapping square windows; every
candidate of every pass is sent, and :mod:`hap3d.infer.detect` merges the duplicates.

Anything else that libraries print to stdout is redirected to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import numpy as np

WIDE = 1.3  # long side / short side above which square windows are run too


def _send(out, message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"expected {n} bytes of pixels, got {len(data)}")
    return data


def _with_input_metadata(path: str, mean: float, std: float) -> bytes:
    """The model file with Tasks metadata saying how its float input is normalised (and generic outputs)."""
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

    with open(path, "rb") as fh:
        writer = metadata_writer.MetadataWriter.create(bytearray(fh.read()))
    writer.add_general_info(os.path.basename(path)).add_image_input([mean], [std])
    for _ in range(writer_utils.get_subgraph(writer._model_buffer).OutputsLength()):
        writer.add_feature_output()
    return writer.populate()[0]


def _multi_landmarker(mp, config: dict):
    """PoseLandmarker from the wheel's own legacy models, bundled in memory: nothing is downloaded."""
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    modules = os.path.join(os.path.dirname(mp.__file__), "modules")
    bundle = io.BytesIO()
    detector = os.path.join(modules, "pose_detection", "pose_detection.tflite")
    landmarks = os.path.join(modules, "pose_landmark", "pose_landmark_full.tflite")
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("pose_detector.tflite", _with_input_metadata(detector, 127.5, 127.5))
        z.writestr("pose_landmarks_detector.tflite", _with_input_metadata(landmarks, 0.0, 255.0))
    threshold = float(config.get("min_detection_confidence", 0.5))
    options = vision.PoseLandmarkerOptions(
        base_options=tasks.BaseOptions(model_asset_buffer=bundle.getvalue()),
        running_mode=vision.RunningMode.IMAGE, num_poses=int(config.get("num_poses", 10)),
        min_pose_detection_confidence=threshold, min_pose_presence_confidence=threshold)
    return vision.PoseLandmarker.create_from_options(options)


def windows(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1): the whole image, plus square windows half overlapping along the long side if it is wide."""
    out = [(0, 0, w, h)]
    side, long = min(h, w), max(h, w)
    if long <= WIDE * side:
        return out
    count = int(np.ceil((long - side) / (side / 2))) + 1
    for start in np.linspace(0, long - side, count).round().astype(int):
        out.append((start, 0, start + side, h) if w > h else (0, start, w, start + side))
    return out


def _multi(mp, landmarker, image: np.ndarray) -> list:
    h, w = image.shape[:2]
    people = []
    for x0, y0, x1, y1 in windows(h, w):
        part = np.ascontiguousarray(image[y0:y1, x0:x1])
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=part))
        people += [[[lm.x * (x1 - x0) + x0, lm.y * (y1 - y0) + y0, lm.visibility] for lm in pose]
                   for pose in result.pose_landmarks]
    return people


def main() -> int:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import mediapipe as mp

    solution = mp.solutions.pose
    multi = config.get("mode") == "multi"
    if multi:
        model = _multi_landmarker(mp, config)
    else:
        model = solution.Pose(static_image_mode=True, model_complexity=1,
                              min_detection_confidence=float(config.get("min_detection_confidence", 0.5)))
    names = [lm.name for lm in sorted(solution.PoseLandmark, key=lambda lm: lm.value)]
    _send(out, {"ready": True, "mediapipe": mp.__version__, "landmarks": names})
    stdin = sys.stdin.buffer
    while True:
        header = stdin.readline()
        if not header.strip():
            break
        h, w = json.loads(header)["shape"]
        image = np.frombuffer(_read_exact(stdin, h * w * 3), np.uint8).reshape(h, w, 3)
        try:
            if multi:
                _send(out, {"people": _multi(mp, model, image)})
                continue
            result = model.process(image)
        except Exception as err:  # one image MediaPipe rejects must not end the batch
            _send(out, {"error": f"{type(err).__name__}: {err}"})
            continue
        if result.pose_landmarks is None:
            _send(out, {"landmarks": None})
            continue
        _send(out, {"landmarks": [[lm.x * w, lm.y * h, lm.visibility] for lm in result.pose_landmarks.landmark]})
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
