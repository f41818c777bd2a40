"""The `cram` shell: every command is listed, every option explained, and building the help
loads no heavy library."""

import argparse
import subprocess
import sys

import pytest

from crambench.shell.cli import COMMANDS, build_parser


def test_help_lists_every_command():
    help_text = build_parser().format_help()
    for name in COMMANDS:
        assert name in help_text


@pytest.mark.subprocess
def test_help_and_package_names_load_lazily():
    code = (
        "import sys, cramming, glue_eval, data_prep, leaderboard\n"
        "from crambench.shell.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('torch', 'numpy', 'tokenizers', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "assert glue_eval.RESULTS_FORMAT == 'cram-glue/2'\n"  # a name under another module name
        "assert 'UserError' in dir(data_prep) and 'pretrain' in dir(cramming)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _options(parser, path=("cram",)):
    """(command path, option strings or dest, help) for every argument of every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        else:
            yield " ".join(path), action.option_strings or [action.dest], action.help


def test_every_option_of_every_command_has_a_help_line():
    missing = [(cmd, names) for cmd, names, text in _options(build_parser())
               if not text or text == argparse.SUPPRESS]
    assert missing == []


def test_quiet_reads_the_same_on_every_command_that_has_it():
    from crambench.progress import QUIET_HELP

    quiet = {cmd: text for cmd, names, text in _options(build_parser()) if "--quiet" in names}
    assert {"cram prepare", "cram pretrain", "cram plan", "cram demo"} <= set(quiet)
    assert set(quiet.values()) == {QUIET_HELP}


def test_pretrain_help_says_when_out_is_required_and_what_device_does():
    helps = {names[0]: text for cmd, names, text in _options(build_parser())
             if cmd == "cram pretrain"}
    assert "required for a new run" in helps["--out"]
    assert "cuda when available" in helps["--device"]


def test_an_unknown_option_is_refused_by_the_command_it_was_given_to(capsys):
    from crambench.shell.cli import main

    assert main(["compress", "--run", "r", "--method", "int8", "--out", "o",
                 "--plugin", "p.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cram compress: error: unrecognized arguments: --plugin")
    assert err.endswith("; see `cram compress --help`\n") and err.count("\n") == 1
