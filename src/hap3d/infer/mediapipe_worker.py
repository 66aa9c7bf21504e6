"""MediaPipe BlazePose worker for :mod:`hap3d.infer.detect`, run by file path in a separate interpreter.

MediaPipe pins ``numpy<2`` and ``protobuf<5``, so it usually lives in its own venv where hap3d is not installed:
this file therefore imports only the standard library, numpy and mediapipe. It loads the model once and serves
a whole batch over a line protocol:

* stdin, per image: one JSON line ``{"shape": [H, W]}`` followed by H*W*3 bytes of RGB uint8 pixels;
* stdout: first ``{"ready": true, "mediapipe": VERSION, "landmarks": [33 PoseLandmark names]}``, then per image
  one JSON line ``{"landmarks": [[x_px, y_px, visibility] x 33]}``, ``{"landmarks": null}`` (nobody found) or
  ``{"error": "..."}`` (this image failed; the worker goes on).

Only ``model_complexity=1`` is used: its model ships inside the mediapipe wheel, while 0 and 2 are downloaded at
run time. Anything else that libraries print to stdout is redirected to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def _send(out, message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"expected {n} bytes of pixels, got {len(data)}")
    return data


def main() -> int:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import mediapipe as mp

    solution = mp.solutions.pose
    pose = solution.Pose(static_image_mode=True, model_complexity=1,
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
            result = pose.process(image)
        except Exception as err:  # one image MediaPipe rejects must not end the batch
            _send(out, {"error": f"{type(err).__name__}: {err}"})
            continue
        if result.pose_landmarks is None:
            _send(out, {"landmarks": None})
            continue
        _send(out, {"landmarks": [[lm.x * w, lm.y * h, lm.visibility] for lm in result.pose_landmarks.landmark]})
    pose.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
