"""The README and docs/ against the code: every `cram ...` line they show parses with the real
argument parser, every `--help` transcript is the parser's current output, every page is in
mkdocs.yml's nav, every relative link leads to a file, and the README stays a front page.

What counts as a command line, in a fenced code block of README.md or docs/*.md:
- a line starting with `cram ` or `$ cram ` (a transcript's prompt), joined with the lines a
  trailing backslash continues, with a trailing `# comment` removed;
- the `cram` part of a `torchrun ... -m cramming pretrain ...` line (the same parser);
- but not a line `cram NAME: ...`: that is the CLI's own output (progress, errors), never a
  command. No line is skipped for placeholders: examples name them in capitals (RUN, DATA).
In README.md also every inline `cram ...` span of a table row: the examples of its table of
commands (the pages' tables name commands, which are not all complete command lines).
Fast: one parser, no subprocess, no training.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from crambench.shell.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 250
# The README and the pages show over 80 command lines; a broken extractor finds few or none.
MIN_COMMANDS = 75

_FENCE = re.compile(r"^\s*(```|~~~)")
_OUTPUT = re.compile(r"^cram [a-z-]+:")  # `cram prepare: trained the tokenizer ...`
_MODULE = re.compile(r"(?:^|\s)-m cramming\s+(?P<rest>.*)$")
_INLINE = re.compile(r"`(cram [^`]+)`")


def _spec():
    spec = importlib.util.spec_from_file_location("transcripts", ROOT / "scripts/transcripts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


transcripts = _spec()


def command_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, argv after `cram`) of each command line in the code blocks of `path`."""
    found, in_block, pending, start = [], False, "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if _FENCE.match(raw):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            if path.name == "README.md" and raw.startswith("|"):
                found += [(number, shlex.split(span)[1:]) for span in _INLINE.findall(raw)]
            continue
        line = raw.strip()
        if pending:
            line, number = pending + " " + line, start
        if line.endswith("\\"):
            pending, start = line[:-1].rstrip(), number
            continue
        pending = ""
        if line.startswith("$ "):
            line = line[2:]
        module = _MODULE.search(line)
        if line.startswith("cram ") and not _OUTPUT.match(line):
            words = shlex.split(line, comments=True)[1:]
        elif module:
            words = shlex.split(module["rest"], comments=True)
        else:
            continue
        found.append((number, words))
    return found


ALL_COMMANDS = [(path, number, words) for path in [README, *PAGES]
                for number, words in command_lines(path)]


PARSER = build_parser()


def _parses(words: list[str]) -> str | None:
    """None if `cram WORDS` parses (or is a --help that prints help), else argparse's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            PARSER.parse_args(words)
    except SystemExit as exit_:
        if exit_.code == 0 and ("--help" in words or "-h" in words):
            return None
        return err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(exit_.code)
    return None


def test_the_docs_show_many_commands():
    assert len(ALL_COMMANDS) >= MIN_COMMANDS, len(ALL_COMMANDS)
    shown = {words[0] for _, _, words in ALL_COMMANDS if words}
    assert shown >= set(COMMANDS), set(COMMANDS) - shown


def test_every_command_line_parses():
    bad = [f"{path.relative_to(ROOT)}:{number}: cram {shlex.join(words)}\n    {problem}"
           for path, number, words in ALL_COMMANDS if (problem := _parses(words)) is not None]
    assert not bad, "command lines the cram parser refuses:\n" + "\n".join(bad)


def test_the_extractor_tells_commands_from_output(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("cram prepare --out outside-a-block\n```console\n"
                    "$ cram pretrain --data d \\\n    --budget 1m --out r  # comment\n"
                    "cram pretrain: 10% of 60s, step 5\n"
                    "torchrun --nproc_per_node 8 -m cramming pretrain --budget 1h\n```\n")
    assert command_lines(page) == [
        (3, ["pretrain", "--data", "d", "--budget", "1m", "--out", "r"]),
        (6, ["pretrain", "--budget", "1h"]),
    ]
    assert _parses(["pretrain", "--budget"]) is not None
    front = tmp_path / "README.md"
    front.write_text("| [plan](docs/plan.md) | size a model | `cram plan --budget 1h` |\n")
    assert command_lines(front) == [(1, ["plan", "--budget", "1h"])]


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_transcripts_are_current(path):
    """Every `--help` transcript is the parser's output now, and the README's short demo log is
    cut from the whole one in docs/demo.md (scripts/transcripts.py writes both)."""
    text = path.read_text()
    demo_log = transcripts.recorded_demo()
    stale = [name for name, body in transcripts.regions(text)
             if body != transcripts.render(name, body, demo_log)]
    assert not stale, (f"{path.name}: the transcripts {stale} are out of date; "
                       "run `python scripts/transcripts.py`")


def test_every_command_page_shows_its_help():
    shown = {name for path in PAGES for name, _ in transcripts.regions(path.read_text())}
    assert "help" in shown
    for command in COMMANDS:
        assert any(name.split()[:2] == ["help", command] for name in shown), command


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return [f for item in node for f in _nav_files(item)]


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_files(config["nav"])
    assert sorted(nav) == sorted(p.name for p in PAGES)


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert lines[0].startswith("# ")
    # The first commands a new user meets are the two that need nothing installed.
    first_block = README.read_text().split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


_LINK = re.compile(r"\]\((?!https?://|mailto:|#)(?P<target>[^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_relative_links_lead_to_files(path):
    """mkdocs --strict checks the pages' links; this checks the README's as well."""
    missing = [m["target"] for m in _LINK.finditer(path.read_text())
               if not (path.parent / m["target"]).exists()]
    assert not missing, f"{path.name} links to missing files: {missing}"


_CITED_PAGE = re.compile(r"\bdocs/[A-Za-z0-9_-]+\.md\b")
_SOURCES = ("crambench", "data_prep", "cramming", "glue_eval", "leaderboard", "sweep", "tests",
            "bench", "scripts")


def test_code_cites_pages_that_exist():
    """Comments cite the manual by page (docs/contracts.md); nothing outside the repository."""
    missing, outside = [], []
    for folder in _SOURCES:
        for source in sorted((ROOT / folder).rglob("*.py")):
            text = source.read_text()
            where = source.relative_to(ROOT)
            missing += [f"{where}: {page}" for page in _CITED_PAGE.findall(text)
                        if not (ROOT / page).is_file()]
            outside += [f"{where}:{n}" for n, line in enumerate(text.splitlines(), start=1)
                        if re.search(r"\(DESIGN\)|\bDESIGN names\b", line)]
    assert not missing, f"code cites pages that do not exist: {missing}"
    assert not outside, f"code cites a design document outside the repository: {outside}"
