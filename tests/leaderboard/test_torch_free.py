"""The validator and the site judge entries from records alone: no torch, no tokenizers and
no trainer module is imported by `cram leaderboard validate` (with --run and --glue-dir) or
`cram leaderboard build`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_entries import make_run

from leaderboard import submit

# Modules a validator must never need: the deep-learning stack and the trainer's own code.
# Of the planner it reads only the speed law and the GPU table (numpy), to cross-check a
# run's throughput against its claimed device; never the planner, which times real models.
FORBIDDEN = ("torch", "tokenizers", "safetensors", "cramming.train", "cramming.plan.planner",
             "cramming.plan.memory", "cramming.plan.command", "cramming.model",
             "cramming.weights", "glue_eval.finetune", "glue_eval.encoder")


def _imported_by(argv: list[str]) -> list[str]:
    code = (
        "import json, sys\n"
        "from crambench.shell.cli import main\n"
        f"status = main({argv!r})\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "print(json.dumps([m for m in sorted(sys.modules) if any(\n"
        "    m == f or m.startswith(f + '.') for f in forbidden)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_validate_and_build_import_no_torch_and_no_trainer(tmp_path, shared_data):
    run = make_run(tmp_path)
    entry = tmp_path / "entries" / "a6000.json"
    submit(run, "a6000", out=entry)
    # The checks themselves may find problems (the hand-made run has no shards and its
    # predictions are not for the real dev files); what matters here is what they import.
    assert _imported_by(["leaderboard", "validate", str(entry), "--run", str(run),
                         "--glue-dir", str(shared_data / "glue")]) == []
    assert _imported_by(["leaderboard", "build", "--entries", str(entry.parent),
                         "--out", str(tmp_path / "site")]) == []
    assert (tmp_path / "site" / "index.html").is_file()
    assert json.loads(entry.read_text())["track"] == "ranked"
