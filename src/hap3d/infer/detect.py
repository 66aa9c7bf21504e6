"""Built-in 2D keypoints for ``hap3d demo``: MediaPipe BlazePose, mapped to COCO17.

MediaPipe pins ``numpy<2`` and ``protobuf<5``, which clash with the main environment, so it runs in a subprocess
(:mod:`hap3d.infer.mediapipe_worker`, started by file path) under a python that has it. That python is the first of:

1. ``--mediapipe-python`` (an explicit choice);
2. ``$HAP3D_MEDIAPIPE_PYTHON``;
3. this interpreter, when ``mediapipe`` is importable here (``pip install hap3d[detect]``);
4. the venv that ``hap3d detect --setup`` creates: ``--venv``, else ``$HAP3D_MEDIAPIPE_VENV``, else
   ``$XDG_CACHE_HOME/hap3d/mediapipe-venv`` (``~/.cache/hap3d/mediapipe-venv``).

Two modes, both offline with the models inside the wheel (see the worker's docstring): ``multi=False`` runs the
legacy ``mp.solutions.pose`` (``model_complexity=1``), which finds **at most one person per image**;
``multi=True`` runs the BlazePose person detector and the landmark model on every person it finds, and
:func:`select_people` then scores the candidates, suppresses duplicates and applies the threshold and
``max_people``. In both, a keypoint outside the image gets score 0 (MediaPipe extrapolates body parts beyond the
frame). Images are decoded here, exactly as ``hap3d demo`` decodes them, and sent as pixels, so the keypoints are
in the same pixel frame the demo uses. What the multi-person mode finds and misses: docs/demo.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Union

import numpy as np
from tqdm import tqdm

from hap3d.body.joints import get_joint_set
from hap3d.data.io import DataError, load_image_rgb
from hap3d.utils import Hap3dError, atomic_write

MEDIAPIPE_VERSION = "0.10.21"
WORKER = Path(__file__).with_name("mediapipe_worker.py")
ENV_PYTHON = "HAP3D_MEDIAPIPE_PYTHON"
ENV_VENV = "HAP3D_MEDIAPIPE_VENV"
REPLY_TIMEOUT_S = 300.0  # for the first reply (imports and model load) and for each image

# mediapipe.solutions.pose.PoseLandmark in index order; the worker reports the enum and a mismatch is an error.
BLAZEPOSE33 = (
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE", "RIGHT_EYE_OUTER",
    "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW",
    "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX",
    "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE",
    "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
)
DUPLICATE_OKS = 0.5  # candidates at least this similar (object keypoint similarity) are one person
MIN_PERSON_SCORE = 0.25  # default least person_score in the multi-person mode
OKS_SIGMA = 0.1  # per-keypoint tolerance, as a fraction of the person's box scale
# COCO17 'L_Eye' is BlazePose 'LEFT_EYE', 'Nose' is 'NOSE', ...: every COCO17 joint has a namesake.
COCO17_FROM_BLAZEPOSE = np.array([
    BLAZEPOSE33.index(n.replace("L_", "LEFT_").replace("R_", "RIGHT_").upper())
    for n in get_joint_set("coco17").joints
])

ImageInput = Union[str, os.PathLike, tuple[str, np.ndarray]]


@dataclass
class Detections:
    """``keypoints`` as :func:`hap3d.infer.keypoints.read_keypoints` returns them (an image with nobody found has
    an empty list); ``errors``: image name -> why that image has no entry."""

    keypoints: dict[str, list[np.ndarray]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)  # per person, as in ``keypoints``


def coco17_from_blazepose(landmarks: np.ndarray) -> np.ndarray:
    """(33, 3) BlazePose [x, y, visibility] -> (17, 3) COCO17 [x, y, score]."""
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.shape != (33, 3):
        raise ValueError(f"expected 33 BlazePose landmarks of (x, y, visibility), got shape {landmarks.shape}")
    return landmarks[COCO17_FROM_BLAZEPOSE].copy()


def outside_unscored(people: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 17, 3) keypoints with the score of each one outside the image set to 0 (its position is kept)."""
    people = np.array(people, np.float32)
    x, y = people[..., 0], people[..., 1]
    people[..., 2] *= (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return people


def person_score(person: np.ndarray) -> float:
    """A person's confidence: the mean score of their 17 COCO keypoints (MediaPipe's Tasks API does not return
    the detector's own score)."""
    return float(np.mean(person[:, 2]))


def keypoint_similarity(a: np.ndarray, b: np.ndarray, min_score: float = 0.3) -> float:
    """Object keypoint similarity of two (17, 3) people, over keypoints confident in both, at the scale of the
    box of ``a``'s confident keypoints; 0 when they share no confident keypoint."""
    both = (a[:, 2] > min_score) & (b[:, 2] > min_score)
    if not both.any():
        return 0.0
    pts = a[a[:, 2] > min_score, :2]
    scale = max(float(np.prod(pts.max(0) - pts.min(0))), 1.0)
    d2 = ((a[both, :2] - b[both, :2]) ** 2).sum(1)
    return float(np.mean(np.exp(-d2 / (2 * scale * OKS_SIGMA ** 2))))


def select_people(candidates: list[np.ndarray], height: int, width: int, min_score: float = MIN_PERSON_SCORE,
                  max_people: int | None = None) -> tuple[list[np.ndarray], list[float]]:
    """COCO17 people from raw candidates, best first: off-image keypoints unscored, people below ``min_score``
    dropped, duplicates (keypoint similarity >= DUPLICATE_OKS to a better one) suppressed, at most ``max_people``."""
    people = [outside_unscored(c, height, width) for c in candidates]
    scored = sorted(((person_score(p), i) for i, p in enumerate(people)), key=lambda t: (-t[0], t[1]))
    kept: list[np.ndarray] = []
    scores: list[float] = []
    for score, i in scored:
        if score < min_score or (max_people is not None and len(kept) >= max_people):
            break
        if all(keypoint_similarity(k, people[i]) < DUPLICATE_OKS for k in kept):
            kept.append(people[i])
            scores.append(score)
    return kept, scores


def default_venv() -> Path:
    if os.environ.get(ENV_VENV):
        return Path(os.environ[ENV_VENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hap3d" / "mediapipe-venv"


def venv_python(venv: str | os.PathLike) -> Path:
    return Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _mediapipe_here() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def find_python(explicit: str | os.PathLike | None = None, venv: str | os.PathLike | None = None) -> Path:
    """The python that runs the worker, chosen in the order the module docstring gives."""
    for source, value in (("--mediapipe-python", explicit), (f"${ENV_PYTHON}", os.environ.get(ENV_PYTHON))):
        if value:
            found = shutil.which(str(Path(value).expanduser()))
            if found is None:
                raise Hap3dError(f"{source}={value} is not an executable python")
            return Path(found)
    if _mediapipe_here():
        return Path(sys.executable)
    python = venv_python(venv if venv else default_venv())
    if python.exists():
        return python
    raise Hap3dError(
        f"no python with MediaPipe: run `hap3d detect --setup` (creates a venv in {python.parent.parent}), "
        f"or point ${ENV_PYTHON} / --mediapipe-python at a python that has mediapipe=={MEDIAPIPE_VERSION}"
    )


class _Worker:
    """One worker process: model loaded once, then one request/reply per image."""

    def __init__(self, python: Path, config: dict):
        self.python = python
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen([str(python), "-I", str(WORKER), json.dumps(config)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as err:
            self._stderr.close()
            raise Hap3dError(f"cannot start the MediaPipe worker with {python}: {err}") from err
        try:
            self.hello = self._receive()
            if self.hello.get("landmarks") != list(BLAZEPOSE33):
                raise Hap3dError(f"the MediaPipe at {python} reports PoseLandmark {self.hello.get('landmarks')}, "
                                 f"not the 33 BlazePose landmarks the COCO17 mapping is written for")
        except BaseException:
            self.close()
            raise

    def ask(self, rgb: np.ndarray) -> dict:
        """The worker's reply for one image: ``landmarks`` (33, 3) array or None, ``people`` (N, 33, 3), or
        ``error``."""
        header = json.dumps({"shape": list(rgb.shape[:2])}).encode() + b"\n"
        try:
            self._proc.stdin.write(header + rgb.tobytes())
            self._proc.stdin.flush()
        except (BrokenPipeError, ConnectionResetError):
            raise self._failure("stopped") from None
        reply = self._receive()
        if reply.get("landmarks") is not None:
            reply["landmarks"] = np.asarray(reply["landmarks"], np.float32)
            if reply["landmarks"].shape != (33, 3):
                raise self._failure(f"sent {reply['landmarks'].shape} landmarks instead of (33, 3)")
        if "people" in reply:
            people = np.asarray(reply["people"], np.float32)
            reply["people"] = people.reshape(0, 33, 3) if people.size == 0 else people
            if reply["people"].ndim != 3 or reply["people"].shape[1:] != (33, 3):
                raise self._failure(f"sent people of shape {reply['people'].shape} instead of (N, 33, 3)")
        return reply

    def _receive(self) -> dict:
        # A hung worker (rather than a crashed one) would block the run: wait for its reply a bounded time.
        if os.name != "nt" and not select.select([self._proc.stdout], [], [], REPLY_TIMEOUT_S)[0]:
            self._proc.kill()
            raise self._failure(f"sent no reply within {REPLY_TIMEOUT_S:.0f} s and was stopped")
        line = self._proc.stdout.readline()
        if not line:
            raise self._failure("stopped")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise self._failure(f"sent a line that is not JSON: {line[:200]!r}") from None

    def _failure(self, what: str) -> Hap3dError:
        try:
            self._proc.stdin.close()  # a worker that is still alive ends at end of input
        except OSError:
            pass
        try:
            code = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = "none yet"
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-20:]
        return Hap3dError(f"the MediaPipe worker ({self.python} {WORKER.name}) {what} (exit code {code}); "
                          f"its stderr ends with:\n  " + "\n  ".join(tail or ["(nothing)"]))

    def close(self) -> None:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _name(item: ImageInput) -> str:
    """A path is keyed by its file name (as ``hap3d demo`` looks it up), a (name, array) pair by its name."""
    return str(item[0]) if isinstance(item, tuple) else Path(item).name


def _load(item: ImageInput) -> np.ndarray:
    """Contiguous RGB uint8 pixels, decoded as ``hap3d demo`` decodes them."""
    if isinstance(item, tuple):
        image = np.asarray(item[1])
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
            raise DataError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    else:
        image = load_image_rgb(item)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


class MediaPipeDetector:
    """COCO17 keypoints from MediaPipe BlazePose (keypoint score = landmark visibility): every person found, best
    first, at most ``max_people``; or with ``multi=False`` at most one person per image (the legacy graph).

    ``min_confidence``: MediaPipe's person detection (and, multi-person, landmark presence) threshold;
    ``min_person_score``: with ``multi=True``, the least :func:`person_score` kept (a half-body photo, whose legs
    are outside the image, scores about 0.5)."""

    def __init__(self, python: str | os.PathLike | None = None, min_confidence: float = 0.5,
                 venv: str | os.PathLike | None = None, multi: bool = True, max_people: int | None = None,
                 min_person_score: float = MIN_PERSON_SCORE):
        if max_people is not None and max_people < 1:
            raise Hap3dError(f"max_people must be at least 1, got {max_people}")
        self.python = find_python(python, venv)
        self.min_confidence = float(min_confidence)
        self.max_people = max_people
        self.min_person_score = float(min_person_score)
        self.multi = multi
        # candidates per pass: a few more than kept, since duplicates and unsure ones are dropped afterwards
        self.config = {"min_detection_confidence": self.min_confidence, "mode": "multi" if multi else "single",
                       "num_poses": 2 * (max_people or 10)}

    def check(self) -> str:
        """Start the worker (which loads the model) and return the MediaPipe version it runs."""
        with _Worker(self.python, self.config) as worker:
            return str(worker.hello.get("mediapipe"))

    def detect(self, images: Iterable[ImageInput], progress: bool = False) -> Detections:
        """Detect on every image in one worker process; an image that fails gets an error entry instead."""
        found = Detections()
        with _Worker(self.python, self.config) as worker:
            for item in tqdm(images, desc="detect", unit="img", disable=not progress, dynamic_ncols=True):
                name = _name(item)
                try:
                    rgb = _load(item)
                except DataError as err:
                    found.errors[name] = str(err)
                    continue
                reply = worker.ask(rgb)
                if "error" in reply:
                    found.errors[name] = f"MediaPipe: {reply['error']}"
                    continue
                h, w = rgb.shape[:2]
                if self.multi:
                    candidates = [coco17_from_blazepose(p) for p in reply.get("people", [])]
                    people, scores = select_people(candidates, h, w, self.min_person_score, self.max_people)
                else:
                    people = [] if reply.get("landmarks") is None else [
                        outside_unscored(coco17_from_blazepose(reply["landmarks"]), h, w)]
                    scores = [person_score(p) for p in people]
                found.keypoints[name], found.scores[name] = people, scores
        return found

    def detect_path(self, path: str | os.PathLike, progress: bool = False) -> Detections:
        """Every image of a file or folder, or every frame of a video, named as ``hap3d demo`` names them."""
        from hap3d.infer.demo import list_inputs, video_frames

        images, video = list_inputs(Path(path))
        return self.detect(images if video is None else video_frames(video), progress)


def write_keypoints(path: str | os.PathLike, keypoints: dict[str, list[np.ndarray]]) -> Path:
    """The reference demo JSON ``{image: [[[x, y, score] x 17] per person]}``, readable by ``--keypoints``."""
    items = []
    for name, people in keypoints.items():  # one line per person keeps the file readable
        rows = [f"\n    {json.dumps(np.round(p.astype(np.float64), 3).tolist())}" for p in people]
        items.append(f"  {json.dumps(name)}: [" + ",".join(rows) + ("\n  ]" if rows else "]"))
    text = "{\n" + ",\n".join(items) + "\n}\n" if items else "{}\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _run(cmd: list, echo: Callable[[str], None], hint: str = "") -> None:
    text = " ".join(str(c) for c in cmd)
    echo(f"$ {text}")
    try:
        code = subprocess.run([str(c) for c in cmd]).returncode
    except OSError as err:
        raise Hap3dError(f"cannot run {text}: {err}") from err
    if code != 0:
        raise Hap3dError(f"command failed with exit code {code}: {text}{hint}")


def setup_venv(venv: str | os.PathLike | None = None, base_python: str | os.PathLike | None = None,
               echo: Callable[[str], None] = print, constraints: str | os.PathLike | None = None) -> Path:
    """Create (or reuse) a venv with MediaPipe, check that its model loads offline, and return its python.

    ``constraints``: a pip constraints file with the exact versions to install (the repository's
    ``requirements/detect-lock.txt``, the set the tests ran with)."""
    venv = Path(venv) if venv else default_venv()
    python = venv_python(venv)
    probe = [str(python), "-c", "import mediapipe; print(mediapipe.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == MEDIAPIPE_VERSION:
        echo(f"reusing {venv} (mediapipe {MEDIAPIPE_VERSION} is installed)")
    else:
        if not python.exists():
            _run([base_python or sys.executable, "-m", "venv", venv], echo)
            (venv / ".gitignore").write_text("*\n")  # as Python >= 3.13 does: a venv inside a checkout stays out of git
        echo(f"installing mediapipe=={MEDIAPIPE_VERSION} and its dependencies (about 1 GB) into {venv}")
        pinned = ["-c", str(Path(constraints).resolve())] if constraints else []
        _run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *pinned,
              f"mediapipe=={MEDIAPIPE_VERSION}"],
             echo, f" (mediapipe {MEDIAPIPE_VERSION} has wheels for CPython 3.9-3.12 on Linux, macOS and Windows; "
                   "--base-python picks the python that creates the venv)")
    version = MediaPipeDetector(python).check()
    echo(f"ok: MediaPipe {version} loads its pose model offline with {python}")
    if venv.resolve() != default_venv().resolve():
        echo(f"not the default location: set {ENV_PYTHON}={python.absolute()} (or pass --mediapipe-python)")
    return python
