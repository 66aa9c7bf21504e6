"""Command-line interface: ``hap3d <command>``. Each command is a thin layer over the Python API.

One module per group of commands: :mod:`hap3d.cli.data` (``body ...``, ``data ...``), :mod:`hap3d.cli.evaluate`
(``eval``), :mod:`hap3d.cli.demo` (``demo``, ``detect``), :mod:`hap3d.cli.model` (``convert``, ``inspect``); this
module holds ``train``, ``quickstart`` and :func:`main`, the one place where errors become messages and exit codes.
``python -m hap3d.cli`` (and ``torchrun -m hap3d.cli``) runs :func:`main` through ``__main__.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import select
import sys
import time
from pathlib import Path

from hap3d.cli.common import load_cfg, main_process
from hap3d.cli.data import add_parsers as add_data_parsers
from hap3d.cli.data import cmd_data_check, cmd_data_synth, format_data_report
from hap3d.cli.demo import add_parsers as add_demo_parsers
from hap3d.cli.evaluate import add_parsers as add_eval_parsers
from hap3d.cli.evaluate import eval_out_dir
from hap3d.cli.model import add_parsers as add_model_parsers
from hap3d.config import shipped_configs
from hap3d.utils import Hap3dError


def _cmd_train(args: argparse.Namespace) -> int:
    from hap3d.engine.run import train

    cfg = load_cfg(args, args.cfg)
    out = args.out or cfg.output_dir
    final = train(cfg, out, resume=args.resume, overwrite=args.overwrite)
    if final:
        where = " (validation split, data.valset; the test set: test_epoch_N.json)" if cfg.data.valset else ""
        print(f"final epoch{where}: " + ", ".join(f"{k} {v:.2f} mm" for k, v in final.items()))
    if main_process():
        print(f"run directory: {out}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from hap3d.quickstart import run_quickstart

    return run_quickstart(Path(args.out), budget=args.budget, device=args.device, resume=args.resume,
                          overwrite=args.overwrite)


def build_parser() -> argparse.ArgumentParser:
    from hap3d import __version__

    p = argparse.ArgumentParser(prog="hap3d", description="HAP / 3DCrowdNet 3D human pose and shape estimation")
    p.add_argument("--version", action="version", version=f"hap3d {__version__}")
    p.add_argument("--debug", action="store_true",
                   help=f"show the Python traceback of any error (also ${DEBUG_ENV}=1; allowed anywhere on the line)")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="run the main job end to end on procedural data (no licensed files)")
    q.add_argument("--out", default="runs/quickstart", help="run directory (default: runs/quickstart)")
    q.add_argument("--budget", default="small", choices=["tiny", "small", "medium"],
                   help="how much work: tiny (the tests), small (about a minute on a quiet 2-core CPU), "
                        "medium (longer, better fit) (default: %(default)s)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    q.add_argument("--resume", action="store_true",
                   help="continue the run in --out (same budget) instead of starting it again")
    q.add_argument("--overwrite", action="store_true",
                   help="start the run in --out again (its body model and data are kept)")
    q.set_defaults(func=_cmd_quickstart)

    t = sub.add_parser("train", help="train (single process, or under torchrun for DDP)",
                       description="Train. KEY=VALUE config overrides may come anywhere on the command line.")
    t.add_argument("--cfg", help="YAML config, ours or the reference's, or the name of a shipped one ("
                   f"{', '.join(shipped_configs())}) (default: the built-in defaults)")
    t.add_argument("--out", help="run directory (default: the config's output_dir)")
    t.add_argument("--resume", action="store_true", help="continue from <run>/checkpoints/last.pt")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoints, logs and evaluations; other files stay)")
    t.add_argument("--data-root", help="data root: Human36M/, MuCo/, MSCOCO/ or coco/, MPII/data/ or mpii/data/, "
                                       "PW3D/data/, see docs/data.md (default: the config's data.root)")
    t.add_argument("--body-model-dir", help="folder with smpl/, J_regressor_*.npy, vposer/ "
                                            "(default: the config's data.body_model_dir)")
    t.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's eval.device, itself auto)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.lr=1e-4 train.end_epoch=1 (default: none)")
    t.set_defaults(func=_cmd_train)

    add_eval_parsers(sub)
    add_demo_parsers(sub)
    add_data_parsers(sub)

    add_model_parsers(sub)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line, taking KEY=VALUE overrides anywhere in it (``train --cfg X a=1 --resume b=2``).

    argparse binds a positional ``nargs='*'`` once, at the first run of positionals, so overrides after an option
    come back unrecognised; and ``parse_intermixed_args`` refuses parsers with subcommands. So the leftovers that
    are KEY=VALUE overrides of a command that takes them are appended to its overrides; anything else is an error.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        overrides = getattr(args, "overrides", None)
        if overrides is None or any(e.startswith("-") or "=" not in e for e in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.overrides = overrides + extras
    return args


def _silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away (``hap3d inspect --keys | head``), so that the flush at
    exit does not raise BrokenPipeError again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # not a real file (captured output): nothing will be flushed to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _stdout_broken() -> bool:
    """Whether stdout's reader has gone (``| head``), as opposed to some other pipe breaking."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False


DEBUG_ENV = "HAP3D_DEBUG"


def main(argv: list[str] | None = None) -> int:
    """Run a command. Input problems (:class:`Hap3dError`, including failed writes) become one message and exit code
    2 (or 128 + N for a stop on signal N); anything else is reported as an internal error with exit code 1. The
    traceback is shown with ``--debug`` or ``HAP3D_DEBUG=1``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    args = parse_args([a for a in argv if a != "--debug"])
    start = time.time()
    try:
        code = args.func(args)
        if args.command != "inspect" and main_process():
            print(f"done in {time.time() - start:.1f} s")
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError as err:
        if not _stdout_broken():  # another pipe (a worker, a socket) broke: that is a real failure
            print(f"hap3d: error: broken pipe: {err}", file=sys.stderr)
            return 1
        _silence_stdout()
        return 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader stopped early
    except Hap3dError as err:
        _report(err, debug, f"hap3d: error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        _report(None, debug, "hap3d: interrupted")
        return 130
    except MemoryError:
        _report(None, debug, "hap3d: error: out of memory (a smaller batch size, fewer workers or a smaller input?)")
        return 2
    except Exception as err:  # a bug, or an input problem that no check caught yet: one line, traceback on request
        hint = "" if debug else f"; rerun with --debug (or {DEBUG_ENV}=1) for the traceback"
        _report(err, debug, f"hap3d: internal error: {type(err).__name__}: {err}\n(a bug in hap3d or an input it "
                            f"does not check yet; please report it{hint})")
        return 1
    return code


def _report(err: BaseException | None, debug: bool, message: str) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    print(message, file=sys.stderr)


__all__ = [
    "build_parser", "cmd_data_check", "cmd_data_synth", "eval_out_dir", "format_data_report", "main", "parse_args",
]
