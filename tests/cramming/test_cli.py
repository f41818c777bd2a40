"""The `cram` shell: every command is listed, and building the help loads no heavy library."""

import subprocess
import sys

from cramming.cli import COMMANDS, build_parser


def test_help_lists_every_command():
    help_text = build_parser().format_help()
    for name in COMMANDS:
        assert name in help_text


def test_help_and_package_names_load_lazily():
    code = (
        "import sys, cramming, glue_eval, data_prep, leaderboard\n"
        "from cramming.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('torch', 'numpy', 'tokenizers', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "assert glue_eval.RESULTS_FORMAT == 'cram-glue/1'\n"  # a name under another module name
        "assert 'UserError' in dir(data_prep) and 'pretrain' in dir(cramming)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
