"""`python scripts/transcripts.py [--demo] [--check]`: rewrite the copied transcripts in the docs.

A transcript is the text between two markers in README.md or docs/*.md:

    <!-- transcript: help eval glue -->
    ...replaced...
    <!-- /transcript -->

`help WORDS` is the output of `cram WORDS --help` (`help` alone: `cram --help`), made here from
`crambench.shell.cli.build_parser` in this process, at a fixed width of 100 columns, so it is
cheap and the same on every machine; tests/test_docs.py checks that each one is current.
`demo` (in docs/demo.md) is the output of `cram demo --out demo-out > demo.log 2>&1` (stdout
and stderr in the order they were written), run in a fresh temporary folder with `--demo` only,
since it trains for three minutes; without `--demo` it keeps what it holds. `demo-short` (in
README.md) is always made from it: the stage lines and the closing summary, without the
per-step progress.

`--check` changes nothing and exits 1 if a transcript is out of date.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELP_WIDTH = 100  # columns argparse wraps help text to (its COLUMNS), whatever the terminal
REGION = re.compile(r"(?P<open><!-- transcript: (?P<name>[^>]*?) -->\n)(?P<body>.*?)"
                    r"(?P<close><!-- /transcript -->)", re.S)


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def help_text(words: list[str]) -> str:
    """What `cram WORDS --help` prints, at HELP_WIDTH columns."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from crambench.shell.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    out = io.StringIO()
    try:
        parser = build_parser(words[0] if words else None)
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            parser.parse_args([*words, "--help"])
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return out.getvalue()


def help_block(words: list[str]) -> str:
    """The fenced block a `help WORDS` region holds."""
    command = " ".join(["cram", *words, "--help"])
    return f"```text\n$ {command}\n{help_text(words).rstrip()}\n```\n"


def run_demo() -> str:
    """Run `cram demo --out demo-out` in a temporary folder; its log, stdout and stderr merged."""
    with tempfile.TemporaryDirectory(prefix="cram-demo-") as work:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("CI", None)  # the transcript shows what a user's log file shows
        done = subprocess.run([sys.executable, "-m", "crambench", "demo", "--out", "demo-out"],
                              cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"cram demo failed (exit {done.returncode}):\n{done.stdout}")
    return done.stdout


def short_demo(log: str) -> str:
    """The demo's stage lines and its closing summary: the per-step progress left out."""
    lines = log.rstrip("\n").split("\n")
    end = lines.index("") if "" in lines else len(lines)
    stages = [line for line in lines[:end] if line.startswith("[")]
    return "\n".join([*stages, *lines[end:]]) + "\n"


def recorded_demo() -> str:
    """The demo log docs/demo.md holds now (its `demo` transcript, without the fence)."""
    body = dict(regions((ROOT / "docs" / "demo.md").read_text()))["demo"]
    return re.sub(r"\A```text\n|```\n?\Z", "", body)


def fenced(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```\n"


def render(name: str, body: str, demo_log: str) -> str:
    words = name.split()
    if words and words[0] == "help":
        return help_block(words[1:])
    if name in ("demo", "demo-short"):
        return fenced(demo_log if name == "demo" else short_demo(demo_log))
    raise SystemExit(f"unknown transcript {name!r} (known: help [WORDS], demo, demo-short)")


def regions(text: str) -> list[tuple[str, str]]:
    """(name, body) of every transcript region in `text`."""
    return [(m["name"].strip(), m["body"]) for m in REGION.finditer(text)]


def rewrite(text: str, demo_log: str) -> str:
    return REGION.sub(lambda m: m["open"] + render(m["name"].strip(), m["body"], demo_log)
                      + m["close"], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true",
                        help="also run `cram demo` (about 5 minutes) for the demo transcripts")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a transcript is out of date")
    args = parser.parse_args(argv)
    demo_log = run_demo() if args.demo and not args.check else recorded_demo()
    stale = []
    for path in doc_files():
        text = path.read_text()
        new = rewrite(text, demo_log)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    verb = "out of date" if args.check else "rewrote"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
