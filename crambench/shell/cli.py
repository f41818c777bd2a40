"""`cram` — the command line of cramming-bench.

    cram prepare --source demo --out data/demo
    cram pretrain --data data/demo --preset tiny --budget 3m --out runs/demo
    cram eval glue --run runs/demo --glue-dir glue/
    cram submit --run runs/demo --name me
    cram leaderboard build --entries entries/ --out site/

A thin shell: each subcommand lives in its own module, which exposes
`add_arguments(parser)` and `run(args) -> int | None`. Modules are imported only when
the table is built, and they import their heavy libraries inside `run`, so `cram --help`
stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from crambench.errors import UserError
from crambench.progress import library_bars

# name -> (module, one-line help). Order is pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("data_prep.command", "clean, tokenize and pack corpora into a data dir"),
    "pretrain": ("cramming.train.command", "pretrain a BERT within a wall-clock budget"),
    "compress": ("cramming.compress.command", "prune and/or quantize a run (train large, "
                 "then compress)"),
    "eval": ("glue_eval.command", "fine-tune and score a run on GLUE or offline probes"),
    "submit": ("leaderboard.submit_command", "turn a scored run into a leaderboard entry"),
    "leaderboard": ("leaderboard.command", "validate entries and build the results site"),
    "export": ("cramming.export.command", "write a run as a Hugging Face transformers folder"),
    "extract": ("cramming.extract.command", "extract and distill a smaller model from a run"),
    "plan": ("cramming.plan.command", "size a model to a budget and a GPU"),
    "sweep": ("sweep.command", "a baseline against its variants: seeds, budget, verdict"),
    "demo": ("crambench.shell.demo", "the whole pipeline on the embedded demo corpus"),
}



def _read_sweep(path):
    from sweep.report import site_view

    return site_view(path)


# What a command needs from a stage above its own, given here, above every stage:
# `cram leaderboard build --sweep DIR` shows a sweep's report, which the sweep package reads.
JOINED: dict[str, dict] = {"leaderboard": {"read_sweep": _read_sweep}}


class Parser(argparse.ArgumentParser):
    """argparse, with its refusals (a missing option, a value out of range) in the one line
    every other error takes: `cram pretrain: error: argument --seed: ...`, exit status 2.
    Subcommands' parsers are of this class too (argparse builds them from their parent's)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `cram` parser; with `only`, just that command's module is imported (so
    `cram leaderboard validate` loads no trainer module)."""
    parser = Parser(
        prog="cram",
        description="cramming-bench: how good a BERT can one GPU pretrain in one day?",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # a stage not installed in this build
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, **JOINED.get(name, {}))
    parser.commands = subparsers.choices  # name -> its parser, which names it in refusals
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The first word that is not an option names the command; anything else (none, a typo)
    # gets the full parser, whose usage lists every command.
    command = next((word for word in argv if not word.startswith("-")), None)
    try:
        parser = build_parser(command if command in COMMANDS else None)
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # the command's own parser refuses them, so the line names the command
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as done:  # --help (0), or a refusal already printed in one line (2)
        return done.code if isinstance(done.code, int) else 2
    library_bars(getattr(args, "quiet", False))
    try:
        status = args.run(args)
    except UserError as err:
        print(f"cram {args.command}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_status", 2)  # 2 for bad input; a failed run says otherwise
    except OSError as err:  # the writers report a full disk themselves; this is the backstop
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {err.filename}" if err.filename else ""
        print(f"cram {args.command}: error: {err.strerror.lower()}{where}; free some space and "
              "run again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cram {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
