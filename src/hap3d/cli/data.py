"""``hap3d body synth``, ``hap3d data synth`` and ``hap3d data check``: the commands that write or check data.

What they print lives here; the work is done by :mod:`hap3d.synth` and :mod:`hap3d.data.check`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hap3d.cli.common import non_negative_int

if TYPE_CHECKING:
    from hap3d.data.check import DatasetCheck, Report


def _cmd_body_synth(args: argparse.Namespace) -> int:
    from hap3d.synth import write_body_model_dir

    out = write_body_model_dir(Path(args.out), overwrite=args.overwrite)
    print(f"wrote a procedural SMPL-format body model (NOT the licensed SMPL model) to {out}")
    return 0


def cmd_data_synth(
    out: str | os.PathLike, body_model_dir: str | os.PathLike | None = None, size: str = "small", seed: int = 0
) -> int:
    """``hap3d data synth``: write the datasets (and, without a body-model folder, the procedural body model into
    ``out/body_model``), print what was written; exit code 0."""
    from hap3d.data import written_dataset_root
    from hap3d.synth import write_body_model_dir, write_synthetic_datasets

    start = time.perf_counter()
    out = Path(out)
    body = Path(body_model_dir) if body_model_dir else out / "body_model"
    if not body_model_dir and not (body / "smpl").is_dir():
        write_body_model_dir(body)
        print(f"wrote the procedural body model (NOT SMPL) to {body}")
    counts = write_synthetic_datasets(out, body, size, seed)  # a killed run is redone by running it again
    for name, n in counts.items():
        print(f"  {name}: {n} annotations in {written_dataset_root(out, name)}")
    elapsed = time.perf_counter() - start
    print(f"wrote synthetic datasets (NOT the real ones) in the real formats to {out} ({elapsed:.1f} s)")
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    return cmd_data_synth(args.out, args.body_model_dir, args.size, args.seed)


def format_data_report(report: Report) -> str:
    """``hap3d data check``'s report as text: a table of rows, the readers' tallies, what is wrong, the result."""

    def num(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    def images(d: DatasetCheck) -> str:
        found = f"{d.images_checked - d.images_missing:,}/{d.images_checked:,}" if d.images_checked else "-"
        return found if d.images_checked in (0, d.images_total) else f"{found} of {d.images_total:,}"

    def listed(prefix: str, text: str) -> list[str]:  # a multi-line message, its later lines indented
        return [f"  {prefix}: " + "\n    ".join(text.splitlines())]

    rows = [("dataset", "status", "samples", "with fit", "images found", "spot checks", "time", "folder")]
    body = report.body_model
    if body is not None:
        rows.append(("body model", body.status, "-", "-", "-", "-", f"{body.seconds:.1f}s", str(body.folder)))
    for d in report.datasets:
        spot = "not run" if d.blocked else f"{d.spot_ok}/{d.spot_total}" if d.spot_total else "-"
        rows.append((d.name, d.status, num(d.samples), num(d.with_fit), images(d), spot, f"{d.seconds:.1f}s",
                     str(d.folder)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"data root: {report.root}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    counted = [d for d in report.datasets if d.filter_counts]
    if counted:
        lines += ["", "reader filters:"]
        lines += [f"  {d.name}: " + ", ".join(f"{k} {v:,}" for k, v in d.filter_counts.items()) for d in counted]
    if body is not None and body.error:
        lines += ["", "body model (FAIL):", *listed("error", body.error)]
    for d in report.datasets:
        bad = [f for f in d.files if f.status != "present"]
        if not (bad or d.errors or d.warnings or d.blocked):
            continue
        lines += ["", f"{d.name} ({d.status}):"]
        lines += [f"  {f.status}: {f.path}  ({f.what})" for f in bad]
        lines += [line for e in d.errors for line in listed("error", e)]
        lines += [line for w in d.warnings for line in listed("warning", w)]
        lines += listed("not run", d.blocked) if d.blocked else []
    if report.errors:
        lines += [""] + [f"error: {e}" for e in report.errors]
    if report.notes:
        lines += [""] + [f"note: {n}" for n in report.notes]
    lines += ["", "result: " + ("FAILED (see the errors above)" if report.exit_code else "OK")]
    return "\n".join(lines)


def cmd_data_check(root: str | os.PathLike | None, body_model_dir: str | os.PathLike | None, datasets: list[str] | None,
                   reference_compat: bool | None = None, cfg: str | os.PathLike | None = None,
                   allow_missing_images: bool = False) -> int:
    """``hap3d data check``: print the report (what is checked: :func:`hap3d.data.check.check_with_config`); exit
    code 1 when a requested dataset cannot be used (a missing image counts, unless ``allow_missing_images``) or the
    body model cannot be loaded."""
    from hap3d.data import check

    report = check.check_with_config(root, body_model_dir, datasets, reference_compat, cfg, allow_missing_images,
                                     progress=lambda m: print(m, flush=True))
    print(format_data_report(report))
    return report.exit_code


def _cmd_data_check(args: argparse.Namespace) -> int:
    return cmd_data_check(args.root, args.body_model_dir, args.datasets, args.reference_compat, cfg=args.cfg,
                          allow_missing_images=args.allow_missing_images)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the ``body`` and ``data`` command groups on the top-level subparsers."""
    body = sub.add_parser("body", help="body-model utilities")
    bsub = body.add_subparsers(dest="body_command", required=True)
    s = bsub.add_parser("synth", help="write a procedural body model in the SMPL file layout")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--overwrite", action="store_true", help="replace an existing folder's files")
    s.set_defaults(func=_cmd_body_synth)

    data = sub.add_parser("data", help="dataset utilities")
    dsub = data.add_subparsers(dest="data_command", required=True)
    ds = dsub.add_parser("synth", help="write small synthetic datasets in the real on-disk formats")
    ds.add_argument("--out", required=True, help="data root to write, in the lowercase tree of docs/data.md "
                                                 "(Human36M/, MuCo/, coco/, mpii/data/, PW3D/data/, CrowdPose/)")
    ds.add_argument("--size", default="tiny", choices=["tiny", "small", "medium", "large"],
                    help="tiny: tests; small, medium: the quickstart budgets; large: a few thousand samples "
                         "(default: %(default)s)")
    ds.add_argument("--seed", type=non_negative_int, default=0,
                    help="seed of the generated people, poses and images (default: %(default)s)")
    ds.add_argument("--body-model-dir", help="body model to pose (default: a procedural one in <out>/body_model)")
    ds.set_defaults(func=_cmd_data_synth)
    dc = dsub.add_parser("check", help="report which dataset files are present, missing or malformed")
    dc.add_argument("--root", help="data root: the reference's data/ (MSCOCO/, MPII/data/, ...) or the lowercase "
                                   "tree (coco/, mpii/data/, ...) with Human36M/, MuCo/, PW3D/data/, as docs/data.md "
                                   "describes (default: from --cfg)")
    dc.add_argument("--cfg", help="training config: check the datasets it uses (trainset_3d, trainset_2d, testset) "
                                  "under its data.root, with its body model and reference_compat")
    dc.add_argument("--body-model-dir", help="to spot-check training samples with their SMPL-fit targets "
                                             "(default: the --cfg's, else <root>/body_model when there)")
    dc.add_argument("--datasets", nargs="*",
                    help="only these (default: those of --cfg, else HAP's and any other found)")
    dc.add_argument("--reference-compat", action=argparse.BooleanOptionalAction, default=None,
                    help="read the data with the reference's quirks (default: the --cfg's model.reference_compat, "
                         "else on)")
    dc.add_argument("--allow-missing-images", action="store_true",
                    help="report missing images as a warning, not a failure (training replaces their samples)")
    dc.set_defaults(func=_cmd_data_check)
