"""``hap3d data check``: is a data root complete and readable, before hours of training find out?

For every dataset the check finds its folder (any of the accepted folders of its reader's ``layout``, see
:mod:`hap3d.data.layout`), lists the files that layout declares for the reader's default split (present / missing
/ empty / malformed, each with the path where it belongs), loads the dataset with its reader, counts the samples
left after the reader's filters, tests that every image path exists (a stat each; a random sample beyond
:data:`IMAGE_CHECK_LIMIT`), and builds a few samples end to end (shapes, finite values, image size against the
annotation). A missing image fails the check unless missing images are allowed: training replaces such a sample
with another, but whoever runs the check wants to know. The body model (``--body-model-dir``, else
``<root>/body_model`` where ``hap3d data synth`` writes it) gets a row of its own; when it cannot be loaded, the
training sets' spot checks (which build SMPL-fit targets) do not run and their rows say so. A layout's variants
(3DPW-Crowd) are loaded as rows of their own whenever their files are there (or the config asks for them); a
config that evaluates on a variant needs only the variant's files, so the dataset's default row is then checked
only when its first file is there, and cannot fail the check.

The results are :class:`Report` objects; the command line prints them (:func:`hap3d.cli.data.format_data_report`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from hap3d.data import DATASETS, build_fit_model, dataset_candidates, dataset_class, find_dataset_root
from hap3d.data.base import TrainDataset
from hap3d.data.io import read_image_bgr
from hap3d.data.layout import DataFile, DatasetLayout, Variant
from hap3d.utils import Hap3dError

if TYPE_CHECKING:
    from hap3d.data.fit import FitModel

HAP_DATASETS = ("Human36M", "MuCo", "MSCOCO", "MPII", "PW3D")  # what HAP trains and tests on
# Image files stat-ed per dataset: every one of COCO's, MPII's and 3DPW's; a random sample of Human3.6M's and
# MuCo's (a few hundred thousand, which on a network drive would take minutes)
IMAGE_CHECK_LIMIT = 100_000
STAT_THREADS = 16
MISSING_SHOWN = 3  # missing image paths named in the report
BODY_MODEL_SUBDIR = "body_model"  # where `hap3d data synth` writes its procedural body model

TRAIN_SHAPES: dict[tuple[str, str], tuple[int, ...]] = {
    ("inputs", "img"): (3, 256, 256),
    ("inputs", "joints"): (30, 2),
    ("inputs", "joints_mask"): (30, 1),
    ("targets", "orig_joint_img"): (30, 3),
    ("targets", "fit_joint_img"): (30, 3),
    ("targets", "orig_joint_cam"): (30, 3),
    ("targets", "fit_joint_cam"): (30, 3),
    ("targets", "pose_param"): (72,),
    ("targets", "shape_param"): (10,),
    ("meta", "orig_joint_valid"): (30, 1),
    ("meta", "orig_joint_trunc"): (30, 1),
    ("meta", "fit_param_valid"): (72,),
    ("meta", "fit_joint_trunc"): (30, 1),
    ("meta", "is_valid_fit"): (),
    ("meta", "is_3D"): (),
}
TEST_SHAPES: dict[tuple[str, str], tuple[int, ...]] = {
    ("inputs", "img"): (3, 256, 256),
    ("inputs", "joints"): (30, 3),
    ("inputs", "joints_mask"): (30, 1),
    ("targets", "smpl_pose"): (72,),
    ("targets", "smpl_shape"): (10,),
    ("targets", "smpl_trans"): (3,),
}


@dataclass
class FileStatus:
    path: Path
    what: str
    status: str  # present | missing | empty | malformed


@dataclass
class DatasetCheck:
    name: str
    folder: Path
    requested: bool
    files: list[FileStatus] = field(default_factory=list)
    samples: int | None = None
    with_fit: int | None = None
    filter_counts: dict[str, int] = field(default_factory=dict)  # the reader's own tally, when it keeps one
    images_total: int = 0  # distinct image paths of the samples
    images_checked: int = 0  # of which stat-ed (all, up to IMAGE_CHECK_LIMIT)
    images_missing: int = 0
    spot_ok: int = 0
    spot_total: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # the dataset cannot be used
    warnings: list[str] = field(default_factory=list)  # usable, but something looks wrong
    blocked: str | None = None  # why the spot checks could not run, when it is not this dataset's fault

    @property
    def status(self) -> str:
        if self.errors:
            return "FAIL" if self.requested else "SKIP"
        if self.blocked:
            return "BLOCKED"
        return "WARN" if self.warnings else "OK"


@dataclass
class BodyModelCheck:
    """The body model the training sets' samples are built with (their SMPL-fit targets)."""

    folder: Path
    error: str | None = None
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "FAIL" if self.error else "OK"


@dataclass
class Report:
    """What ``hap3d data check`` found under a data root; :attr:`exit_code` is the command's."""

    root: Path
    datasets: list[DatasetCheck]
    errors: list[str] = field(default_factory=list)  # problems not tied to one dataset
    notes: list[str] = field(default_factory=list)
    body_model: BodyModelCheck | None = None  # None: no body-model folder given or found

    @property
    def exit_code(self) -> int:
        failed = self.errors or any(d.status == "FAIL" for d in self.datasets)
        return 1 if failed or (self.body_model is not None and self.body_model.status == "FAIL") else 0


def _file_statuses(files: Sequence[DataFile], folder: Path) -> list[FileStatus]:
    """Each declared file at the first of its accepted places that exists, else where it belongs."""
    out = []
    for f in files:
        found = f.find(folder)
        if found is None:
            out.append(FileStatus(folder / f.rel, f.what, "missing"))
        elif not f.is_dir and found.stat().st_size == 0:
            out.append(FileStatus(found, f.what, "empty"))
        else:
            out.append(FileStatus(found, f.what, "present"))
    return out


def _check_sample(sample: dict, shapes: dict[tuple[str, str], tuple[int, ...]]) -> list[str]:
    """Contract violations of one built sample (missing keys, shapes, float32, finite values, image range)."""
    problems = []
    for (part, key), shape in shapes.items():
        value = sample.get(part, {}).get(key)
        if not isinstance(value, torch.Tensor):
            problems.append(f"{part}.{key} missing or not a tensor ({type(value).__name__})")
            continue
        if tuple(value.shape) != shape:
            problems.append(f"{part}.{key} has shape {tuple(value.shape)}, expected {shape}")
        if value.is_floating_point() and value.dtype != torch.float32:  # a float64 tensor doubles batch memory
            problems.append(f"{part}.{key} is {str(value.dtype).replace('torch.', '')}, expected float32")
        if value.is_floating_point() and not torch.isfinite(value).all():
            problems.append(f"{part}.{key} has non-finite values")
    img = sample.get("inputs", {}).get("img")
    if isinstance(img, torch.Tensor) and img.numel() and (img.min() < 0 or img.max() > 1):
        problems.append(f"inputs.img outside [0, 1] (min {float(img.min()):.3g}, max {float(img.max()):.3g})")
    return problems


@dataclass(frozen=True)
class Options:
    """How thoroughly each dataset is checked."""

    spot_checks: int = 3  # samples built end to end
    image_limit: int = IMAGE_CHECK_LIMIT  # image files stat-ed; a random sample of them beyond
    allow_missing_images: bool = False  # a missing image warns instead of failing the dataset


def _check_images(check: DatasetCheck, paths: Sequence[str], opts: Options) -> set[str]:
    """Stat every distinct image path (a random ``opts.image_limit`` of them beyond); return the missing ones.

    A missing image fails the dataset unless missing images are allowed: training would replace its samples,
    which a check should not keep quiet about. No image at all fails it either way."""
    distinct = sorted(set(paths))
    checked = distinct
    if len(distinct) > opts.image_limit:
        picked = np.random.default_rng(0).choice(len(distinct), opts.image_limit, replace=False)
        checked = [distinct[int(i)] for i in sorted(picked)]
    # Threads, because on network filesystems each stat is a round trip; a bar, because 100k of them take a while.
    with ThreadPoolExecutor(STAT_THREADS) as pool:
        found = list(tqdm(pool.map(os.path.isfile, checked, chunksize=256), total=len(checked), leave=False,
                          desc=f"{check.name}: images", unit="file", disable=len(checked) < 5000 or None))
    missing = [p for p, ok in zip(checked, found) if not ok]
    check.images_total, check.images_checked, check.images_missing = len(distinct), len(checked), len(missing)
    if not missing:
        return set()
    scope = f"checked {len(checked):,} of {len(distinct):,} image files"
    if len(checked) < len(distinct):
        scope += f", a random sample: at most {opts.image_limit:,} are checked"
    if len(missing) == len(checked):
        check.errors.append(f"none of the images exist ({scope}), e.g. {missing[0]} (is the image folder linked?)")
        return set(missing)
    shown = ", ".join(missing[:MISSING_SHOWN])
    if len(missing) > MISSING_SHOWN:
        shown += f" and {len(missing) - MISSING_SHOWN:,} more"
    message = f"{len(missing):,} of {len(checked):,} images are missing ({scope}): {shown}"
    if opts.allow_missing_images:
        check.warnings.append(f"{message}; allowed (--allow-missing-images): training replaces their samples "
                              "with others")
    else:
        check.errors.append(f"{message}. Training would replace their samples with others; restore the images, or "
                            "pass --allow-missing-images to accept that")
    return set(missing)


def _spot_check(check: DatasetCheck, ds, paths: Sequence[str], missing: set[str], opts: Options,
                shapes: dict[tuple[str, str], tuple[int, ...]]) -> None:
    """Build a few samples spread over the dataset, among those whose image is there (missing images are the
    image check's to report; with them allowed, training would not build these samples either)."""
    usable = [i for i, p in enumerate(paths) if p not in missing]
    if not usable:
        return
    wrong_size = []
    for i in sorted({usable[int(k)] for k in np.linspace(0, len(usable) - 1, min(opts.spot_checks, len(usable)))}):
        rec = ds.records[i]
        if opts.allow_missing_images and not Path(rec.img_path).is_file():  # missing, and beyond the sampled check
            continue
        check.spot_total += 1
        try:
            sample = ds[i]
            problems = _check_sample(sample, shapes)
            h, w = read_image_bgr(rec.img_path).shape[:2]
        except Exception as err:  # any failure here is what the check exists to report
            check.errors.append(f"sample {i} ({rec.img_path}) cannot be built: {type(err).__name__}: {err}")
            continue
        if (h, w) != tuple(rec.img_size):
            wrong_size.append(f"{rec.img_path} is {w}x{h} (WxH), the reader uses {rec.img_size[1]}x{rec.img_size[0]}")
        if problems:
            check.errors.append(f"sample {i} ({rec.img_path}): " + "; ".join(problems))
        else:
            check.spot_ok += 1
    if wrong_size:
        check.warnings.append(
            f"{len(wrong_size)} of {check.spot_total} spot-checked images differ from the annotated size used for box "
            f"clipping and flips, e.g. {wrong_size[0]}"
            + (" (reference_compat swaps CrowdPose's width and height, see docs/reference-differences.md)"
               if check.name == "CrowdPose" else "")
        )


def _inspect(
    check: DatasetCheck, load: Callable[[], Any], shapes: dict, opts: Options, blocked: str | None = None
) -> None:
    """Load the dataset with its reader, then count its samples, look for its images and build a few samples.

    ``blocked``: why samples cannot be built (the body model failed); the rest is still checked."""
    try:
        ds = load()
    except ImportError as err:
        check.errors.append(f"the {check.name} reader is not available ({err})")
        return
    except Exception as err:  # the reader's message names the file and the problem
        message = f"{type(err).__name__}: {err}" if not isinstance(err, Hap3dError) else str(err)
        check.errors.append(f"cannot load: {message}")
        for f in check.files:
            if f.status == "present" and str(f.path) in message:
                f.status = "malformed"
        return
    check.samples = len(ds)
    check.filter_counts = dict(getattr(ds, "filter_counts", {}))
    if shapes is TRAIN_SHAPES:
        check.with_fit = sum(r.fit is not None for r in ds.records)
    if len(ds) == 0:
        check.errors.append("no sample survived the reader's filters")
        return
    paths = [str(r.img_path) for r in ds.records]
    missing = _check_images(check, paths, opts)
    if blocked:
        check.blocked = blocked
    elif not check.errors:
        _spot_check(check, ds, paths, missing, opts, shapes)


def _finish(check: DatasetCheck, start: float) -> DatasetCheck:
    for f in check.files:
        if f.status in ("missing", "empty", "malformed") and not check.errors:
            check.warnings.append(f"{f.path} is {f.status} but the reader did not need it")
    check.seconds = time.perf_counter() - start
    return check


def _loader(name: str, folder: Path, fit_model, reference_compat: bool, **options: Any
            ) -> tuple[Callable[[], Any], dict[tuple[str, str], tuple[int, ...]]]:
    """How to load the dataset with its reader (training readers strictly, with the body model), and the sample
    shapes its items must have."""
    reader = dataset_class(name)
    if issubclass(reader, TrainDataset):
        def load() -> Any:
            return reader(folder, fit_model, reference_compat=reference_compat, strict=True, **options)

        return load, TRAIN_SHAPES
    return (lambda: reader(folder, **options)), getattr(reader, "sample_shapes", TEST_SHAPES)


def _check_dataset(
    name: str, root: Path, requested: bool, fit_model, reference_compat: bool, opts: Options,
    options: Collection[str] = (), blocked: str | None = None,
) -> list[DatasetCheck]:
    """The dataset's row, plus a row per layout variant whose files are there or that ``options`` asks for.

    A variant asked for (its reader option in ``options``, e.g. ``crowd``) replaces the default split: the default
    row is not requested, and left out when its first file is not there. ``blocked``: why training samples cannot
    be built (a test reader's samples need no body model)."""
    start = time.perf_counter()
    layout: DatasetLayout[Any] = dataset_class(name).layout
    required = [v for v in layout.variants if v.option in options]
    replacing = [v for v in required if v.replaces_default]
    folder = find_dataset_root(root, name)
    if folder is None:  # every path the reader would need, under the first accepted folder
        candidates = dataset_candidates(root, name)
        check = DatasetCheck(name, candidates[0], requested)
        if len(candidates) == 1:
            check.errors.append(f"dataset folder not found: {candidates[0]} (the files listed above belong in it)")
        else:
            check.errors.append(
                "dataset folder not found: none of " + ", ".join(str(c) for c in candidates) + " exists (the files "
                f"listed above belong in one of them; shown under {candidates[0]})"
            )
        files = [f for v in replacing for f in layout.files_for(v.split)] if replacing else list(layout.files_for())
        files += [f for v in required if not v.replaces_default for f in layout.own_files(v.split)]
        check.files = [FileStatus(candidates[0] / f.rel, f.what, "missing") for f in dict.fromkeys(files)]
        return [_finish(check, start)]
    checks = []
    if not replacing or (folder / layout.marker).exists():
        check = DatasetCheck(name, folder, requested and not replacing)
        check.files = _file_statuses(layout.files_for(), folder)
        load, shapes = _loader(name, folder, fit_model, reference_compat)
        _inspect(check, load, shapes, opts, None if shapes is not TRAIN_SHAPES else blocked)
        checks.append(_finish(check, start))
    for variant in layout.variants:
        variant_check = _check_variant(name, variant, folder, requested, variant in required, fit_model,
                                       reference_compat, opts, blocked)
        if variant_check is not None:
            checks.append(variant_check)
    return checks


def _check_variant(
    name: str, variant: Variant, folder: Path, dataset_requested: bool, required: bool, fit_model,
    reference_compat: bool, opts: Options, blocked: str | None,
) -> DatasetCheck | None:
    """A variant (3DPW-Crowd), loaded when all the files only it reads are there; with some of them there, a
    warning (or, when the config evaluates on it, a failure); None when none is there and nothing asks for it."""
    start = time.perf_counter()
    files = _file_statuses(dataset_class(name).layout.own_files(variant.split), folder)
    present = [f.status != "missing" for f in files]
    if not any(present) and not required:
        return None
    check = DatasetCheck(variant.row, folder, dataset_requested and (required or all(present)), files)
    if not all(present):
        missing = ", ".join(str(f.path) for f, p in zip(files, present) if not p)
        if required:
            check.errors.append(f"the config evaluates on {variant.title}, which needs {missing}")
        else:
            check.warnings.append(f"{variant.title} not checked: it also needs {missing}")
        check.seconds = time.perf_counter() - start
        return check
    load, shapes = _loader(name, folder, fit_model, reference_compat, **{variant.option: True})
    _inspect(check, load, shapes, opts, None if shapes is not TRAIN_SHAPES else blocked)
    return _finish(check, start)


def _load_body_model(report: Report, root: Path, body_model_dir: Path | None) -> FitModel | None:
    """The fit model of ``body_model_dir``, else of ``<root>/body_model`` when there (what ``hap3d data synth``
    writes), with its row in ``report``; None when there is none or it cannot be loaded."""
    if body_model_dir is None and (root / BODY_MODEL_SUBDIR).is_dir():
        body_model_dir = root / BODY_MODEL_SUBDIR
        report.notes.append(f"using the body model found under the data root, {body_model_dir} (--body-model-dir "
                            "to use another)")
    if body_model_dir is None:
        report.notes.append(f"no body-model folder given (--body-model-dir) and no {root / BODY_MODEL_SUBDIR}: "
                            "samples were built without SMPL-fit targets")
        return None
    start = time.perf_counter()
    report.body_model = BodyModelCheck(body_model_dir)
    try:
        return build_fit_model(body_model_dir)
    except Exception as err:  # the loader's message names the file and the problem
        reason = str(err) if isinstance(err, Hap3dError) else f"{type(err).__name__}: {err}"
        report.body_model.error = f"cannot be loaded: {reason}"
        return None
    finally:
        report.body_model.seconds = time.perf_counter() - start


def check_data_root(
    root: Path,
    datasets: Sequence[str] | None = None,
    body_model_dir: Path | None = None,
    spot_checks: int = 3,
    reference_compat: bool = True,
    image_limit: int = IMAGE_CHECK_LIMIT,
    progress: Callable[[str], None] | None = None,
    crowd: bool = False,
    allow_missing_images: bool = False,
    valsets: Collection[str] = (),
) -> Report:
    """Check every requested dataset under ``root`` (any accepted layout, see :data:`hap3d.data.DATASETS`).

    ``datasets`` None checks HAP's datasets (Human36M, MuCo, MSCOCO, MPII, PW3D) and any other known dataset
    whose folder exists; only the requested ones (or HAP's) can fail the check. Without ``body_model_dir``,
    ``<root>/body_model`` is used when there, else the samples are built without SMPL-fit targets. ``crowd``
    makes the files of the layout variants selected by ``crowd`` (3DPW-Crowd) required, as ``data.crowd`` does in
    a config. ``valsets``: datasets whose validation split the config selects models on (``data.valset``): its
    files are then required too, besides the default split's.
    ``allow_missing_images`` turns missing images into warnings.
    """
    root = Path(root)
    if datasets is not None:
        unknown = [d for d in datasets if d not in DATASETS]
        if unknown:
            raise Hap3dError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    requested = list(HAP_DATASETS if datasets is None else datasets)
    extra = [d for d in DATASETS if datasets is None and d not in requested and find_dataset_root(root, d) is not None]
    report = Report(root, [])
    if not root.is_dir():
        report.errors.append(f"data root not found: {root}")
    fit_model = _load_body_model(report, root, body_model_dir)
    blocked = None
    if report.body_model is not None and report.body_model.error:
        blocked = ("the spot checks (they build samples with the body model, which cannot be loaded: see 'body model' "
                   "above)")
    opts = Options(spot_checks, image_limit, allow_missing_images)
    for name in requested + extra:
        if progress is not None:
            progress(f"checking {name} ...")
        report.datasets += _check_dataset(
            name, root, name in requested, fit_model, reference_compat, opts,
            ("crowd",) * crowd + ("validation",) * (name in valsets), blocked
        )
    return report


def config_datasets(cfg) -> list[str]:
    """The datasets a training config uses: its 3D and 2D training sets and its test set."""
    names = [*cfg.data.trainset_3d, *cfg.data.trainset_2d, cfg.data.testset, *filter(None, [cfg.data.valset])]
    return list(dict.fromkeys(names))


def check_with_config(
    root: str | Path | None,
    body_model_dir: str | Path | None,
    datasets: Sequence[str] | None,
    reference_compat: bool | None = None,
    cfg: str | Path | None = None,
    allow_missing_images: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """``hap3d data check``'s report: the given values, else those of ``cfg`` (a training config).

    With ``cfg`` the datasets, data root, body-model folder, ``reference_compat`` and 3DPW-Crowd setting come from
    the config; ``root``, ``body_model_dir``, ``datasets`` and ``reference_compat`` still win if given.
    ``reference_compat`` None: the config's, else True (the reference's readers).
    """
    crowd, valsets = False, []
    if cfg is not None:
        from hap3d.config import load_config

        config = load_config(cfg)
        root = root if root is not None else config.data.root
        body_model_dir = body_model_dir if body_model_dir is not None else config.data.body_model_dir
        datasets = datasets if datasets is not None else config_datasets(config)
        reference_compat = reference_compat if reference_compat is not None else config.model.reference_compat
        crowd = config.data.crowd
        valsets = [config.data.valset] if config.data.valset else []
    if reference_compat is None:  # no config: the reference's readers
        reference_compat = True
    if root is None:
        raise Hap3dError("hap3d data check needs --root DIR or --cfg CONFIG (whose data.root is checked)")
    return check_data_root(
        Path(root), datasets, None if body_model_dir is None else Path(body_model_dir),
        reference_compat=reference_compat, progress=progress, crowd=crowd, allow_missing_images=allow_missing_images,
        valsets=valsets,
    )
