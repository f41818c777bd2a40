"""`cram pretrain --data DATA --budget 24h --out RUN`: train a crammed BERT to a wall-clock budget.

    cram pretrain --data data/demo --preset tiny --budget 90s --out runs/tiny
    cram pretrain --resume runs/tiny      # after an interruption: same data, budget, clock
    cram pretrain --data data/c4 --budget 24h --gpu-check ranked --out runs/ref optim.lr=5e-4
    cram pretrain --nproc 8 --data data/c4 --budget 48h --out runs/16x   # DDP, one node
    torchrun --nproc_per_node 8 -m cramming pretrain --data data/c4 --budget 48h --out runs/16x
"""

from __future__ import annotations

import argparse
import shlex
import sys

from crambench import options
from crambench.progress import QUIET_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="prepared data dir (cram prepare); required for a new "
                                       "run, with --resume only if the data dir moved")
    parser.add_argument("--budget", type=options.budget,
                        help="wall-clock training budget: 24h, 90m, 1h30m, 45s or seconds; "
                             "required for a new run")
    parser.add_argument("--preset", default=None,
                        help="crammed-bert (reference, the default), tiny, mini, small, a .yaml "
                             "file, or auto (ask the planner)")
    parser.add_argument("--out", metavar="RUN",
                        help="run dir to create (contract cram-run/1); required for a new run, "
                             "left out with --resume")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="where to train: auto (cuda when available, else cpu), cuda or "
                             "cpu; changes speed, not the recipe")
    parser.add_argument("--gpu-check", default="open", choices=("ranked", "open"),
                        help="ranked: refuse GPUs outside the ranked track; open: any, labelled")
    parser.add_argument("--seed", type=options.seed, default=None,
                        help="seed (default: the preset's, 0)")
    parser.add_argument("--plugin", metavar="FILE.py",
                        help="your own code: a file of hooks (docs/plugins.md), copied into the "
                             "run; its options as plugin.options.KEY=VALUE")
    parser.add_argument("--resume", metavar="RUN",
                        help="continue an interrupted run: its data, budget, recipe and clock")
    parser.add_argument("--force", action="store_true", help="replace a run already in --out")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("--nproc", type=options.whole(1), default=1, metavar="N",
                        help="train on N ranks of this machine with DistributedDataParallel "
                             "(one per GPU; CPU processes with --device cpu), launched by "
                             "torch's elastic launcher; under torchrun leave it out")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=5e-4 impl.compile=true")


def run(args: argparse.Namespace) -> int:
    from crambench.errors import UserError
    from cramming.train.budget import parse_budget
    from cramming.train.distributed import launch

    if args.resume and args.preset:
        raise UserError("--preset does not apply with --resume: the run keeps its own config")
    # Parsed here, once: the library and every rank take seconds.
    args.budget_s = None if args.budget is None else parse_budget(args.budget)
    if args.nproc != 1:
        return launch(args.nproc, worker_arguments(args), run=args.resume or args.out,
                      device=args.device)
    return train(args)


def worker_arguments(args: argparse.Namespace) -> list[str]:
    """The `cram pretrain` arguments each rank gets: these ones, without --nproc."""
    words = ["--device", args.device, "--gpu-check", args.gpu_check]
    for flag, value in (("--data", args.data), ("--budget", args.budget_s),
                        ("--preset", args.preset), ("--out", args.out), ("--seed", args.seed),
                        ("--resume", args.resume), ("--plugin", args.plugin)):
        if value is not None:
            words += [flag, str(value)]
    words += [flag for flag, on in (("--force", args.force), ("--quiet", args.quiet)) if on]
    return words + list(args.overrides)


def train(args: argparse.Namespace) -> int:
    """One process, or one rank of a job torchrun (or --nproc) started."""
    from crambench.errors import UserError
    from cramming.train.distributed import LOST_CONTACT, AgreedError, lost_contact, short_error
    from cramming.train.pretrain import pretrain

    try:
        summary = pretrain(
            args.data, args.out, budget_s=args.budget_s, preset=args.preset or "crammed-bert",
            overrides=args.overrides, device=args.device, gpu_check=args.gpu_check,
            seed=args.seed, resume=args.resume, force=args.force, quiet=args.quiet,
            plugin=args.plugin,
        )
    except AgreedError:
        if _rank() == 0:
            raise
        return 2  # rank 0 prints the error every rank raised together
    except UserError as err:
        if _rank() == 0:
            raise
        raise UserError(f"rank {_rank()}: {err}") from None
    except RuntimeError as err:  # another rank died or hung: one line, no traceback
        if not lost_contact(err):
            raise
        print(f"cram pretrain: error: rank {_rank()}: lost contact with the other ranks "
              f"({short_error(err)})", file=sys.stderr)
        return LOST_CONTACT
    if "format" not in summary:  # ranks other than 0 write and print nothing
        return 130 if summary["stopped_by"] == "interrupt" else 0
    run_dir = args.resume or args.out
    if summary["stopped_by"] == "interrupt":
        print(f"cram pretrain: interrupted after {summary['train_elapsed_s']:.0f}s, step "
              f"{summary['steps']}; continue with `cram pretrain --resume {shlex.quote(run_dir)}`")
        return 130
    print(f"cram pretrain: {run_dir}: {summary['steps']} steps in "
          f"{summary['train_elapsed_s']:.1f}s of {summary['budget_s']:g}s, "
          f"train loss {summary['train_loss']}, val loss {summary['val_loss']}")
    return 0


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))
