"""Plug-ins end to end: each example in examples/plugins trains, is interrupted and resumes to
the weights of an uninterrupted run, and is evaluated; one is submitted and validated, and
the run's copy of the code is what counts. Then the bad plug-ins, each one line naming the
file and the hook, before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_component_runs import StillClock, _run

from crambench.errors import UserError
from cramming.train.pretrain import pretrain
from glue_eval import evaluate_probes

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_torch_thread")]

EXAMPLES = Path(__file__).parents[3] / "examples" / "plugins"
# The examples of cram prepare's hook (keep_document), tested in
# tests/data_prep/test_prepare_plugin.py; pretraining refuses them (BAD below).
PREPARE_EXAMPLES = ("document_filter.py",)
STEPS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from conftest import make_grammar_data

    return make_grammar_data(tmp_path_factory.mktemp("plugins"), seq_len=32, val_fraction=0.3)


def overrides(data, *extra):
    from data_prep import open_data_dir

    return [f"model.vocab_size={open_data_dir(data).vocab_size}", "model.seq_len=32",
            "impl.threads=1", "train.batch_start=8", "train.batch_size=8", "impl.micro_batch=4",
            f"train.max_steps={STEPS}", *extra]


def plugin_run(data, run, plugin, extra=(), **kwargs):
    return _run(data, run, overrides(data, *extra), plugin=plugin, **kwargs)


TRAINED_EXAMPLES = [
    ("lion.py", ["plugin.options.lr_scale=0.5"]),
    ("squared_relu.py", []),
    ("wsd.py", ["plugin.options.decay=0.3"]),
]


def test_every_example_is_tested_here_or_with_cram_prepare():
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(
        [example for example, _ in TRAINED_EXAMPLES] + list(PREPARE_EXAMPLES))


@pytest.mark.parametrize(("example", "extra"), TRAINED_EXAMPLES)
def test_example_trains_resumes_exactly_and_evaluates(example, extra, data, tmp_path,
                                                      quick_probes):
    source = tmp_path / example
    shutil.copy(EXAMPLES / example, source)
    straight = plugin_run(data, tmp_path / "straight", source, extra)
    stopped = plugin_run(data, tmp_path / "resumed", source, extra, interrupt_at=4)
    assert stopped["stopped_by"] == "interrupt" and 0 < stopped["steps"] < STEPS
    source.write_text(source.read_text() + "\nraise RuntimeError('edited')\n")  # no effect now
    with pytest.raises(UserError, match=r"^--resume .*: model\.ffn=mlp \(the run's: glu\) "
                                        r"changes its recipe"):
        pretrain(resume=tmp_path / "resumed", quiet=True, clock=StillClock(),
                 overrides=["model.ffn=mlp"])
    resumed = pretrain(resume=tmp_path / "resumed", quiet=True, clock=StillClock())
    assert resumed["steps"] == STEPS == straight["steps"]
    assert resumed["config_sha256"] == straight["config_sha256"]
    assert resumed["plugin_sha256"] == straight["plugin_sha256"] is not None
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "resumed" / "final" / "model_config.json").read_text())
    assert ("plugin" in saved) == (example == "squared_relu.py")
    if example == "squared_relu.py":  # the plug-in's MLP: the GLU's down takes half the width
        assert a["encoder.blocks.0.ffn.up.weight"].shape == (512, 128)
        assert a["encoder.blocks.0.ffn.down.weight"].shape == (128, 512)
    results = evaluate_probes(tmp_path / "resumed", quiet=True, device="cpu")
    assert set(results["tasks"]) == {"continuation", "word_order"}


def test_a_plugin_run_is_submitted_and_validated_on_its_own_copy(data, tmp_path, quick_probes,
                                                                 capsys):
    from crambench.shell.cli import main

    source = tmp_path / "squared_relu.py"
    shutil.copy(EXAMPLES / "squared_relu.py", source)
    run = tmp_path / "run"
    plugin_run(data, run, source)
    assert (run / "code" / "plugin.py").read_bytes() == source.read_bytes()
    evaluate_probes(run, quiet=True, device="cpu")
    entry = tmp_path / "entry.json"
    assert main(["submit", "--run", str(run), "--name", "relu2", "--out", str(entry)]) == 0
    assert main(["leaderboard", "validate", str(entry), "--run", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith("valid")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "hf")]) == 2
    assert "the run's plug-in built this model" in capsys.readouterr().err
    assert main(["compress", "--run", str(run), "--method", "int8",
                 "--out", str(tmp_path / "int8")]) == 2
    assert "trained with a plug-in (code/plugin.py); cram compress derives only" in \
        capsys.readouterr().err
    copy = run / "code" / "plugin.py"
    copy.write_text(copy.read_text() + "# edited\n")
    assert main(["leaderboard", "validate", str(entry), "--run", str(run)]) != 0
    assert "the run's code was changed after it trained" in capsys.readouterr().out
    with pytest.raises(UserError, match="the run's code was changed after it trained"):
        evaluate_probes(run, quiet=True, device="cpu", force=True)


BAD = {
    "syntax": ("CRAM_PLUGIN_API = 1\ndef lr_factor(f, train, options)\n    return 1.0\n",
               r"bad\.py:2: syntax error"),
    "no api": ("def lr_factor(f, train, options):\n    return 1.0\n",
               r"bad\.py defines no CRAM_PLUGIN_API"),
    "unknown hook": ("CRAM_PLUGIN_API = 1\ndef build_optimiser(model, optim, options):\n"
                     "    pass\n", r"bad\.py: unknown hook 'build_optimiser'"),
    "import raises": ("CRAM_PLUGIN_API = 1\nimport not_a_module_anywhere\n",
                      r"bad\.py: importing it raised ModuleNotFoundError"),
    "hook raises": ("CRAM_PLUGIN_API = 1\ndef lr_factor(f, train, options):\n"
                    "    return 1 / 0\n", r"bad\.py: hook lr_factor raised ZeroDivisionError"),
    "wrong type": ("CRAM_PLUGIN_API = 1\ndef batch_size(f, train, options):\n"
                   "    return 8.5\n", r"bad\.py: hook batch_size returned 8\.5 at f=0"),
    "past the data": ("CRAM_PLUGIN_API = 1\ndef batch_size(f, train, options):\n"
                      "    return 10 ** 9\n",
                      r"bad\.py: hook batch_size returned 1,000,000,000 at f=0, more than the "
                      r"data dir's [\d,]+ train rows"),
    "no hooks": ("CRAM_PLUGIN_API = 1\nSCALE = 2\n", r"bad\.py defines none of the hooks"),
    "a document filter": ((EXAMPLES / "document_filter.py").read_text(),
                          r"bad\.py defines only keep_document, which cram prepare runs; pass "
                          r"it to cram prepare --plugin$"),
    "not a model": ("CRAM_PLUGIN_API = 1\nimport torch\ndef build_model(cfg, options, dropout):"
                    "\n    return torch.nn.Linear(2, 2)\n",
                    r"bad\.py: hook build_model returned Linear, not a cramming\.model"),
    "not an optimizer": ("CRAM_PLUGIN_API = 1\ndef build_optimizer(model, optim, options):\n"
                         "    return list(model.parameters())\n",
                         r"bad\.py: hook build_optimizer returned list"),
    "state a checkpoint cannot hold": (
        "CRAM_PLUGIN_API = 1\nimport torch\n"
        "class Odd(torch.optim.SGD):\n"
        "    def __init__(self, params, lr):\n"
        "        super().__init__(params, lr=lr)\n"
        "        self.calls = 0\n"
        "    def load_state_dict(self, state):\n"
        "        raise KeyError('calls')\n"
        "def build_optimizer(model, optim, options):\n"
        "    return Odd(model.parameters(), lr=optim.lr)\n",
        r"bad\.py: the optimizer from hook build_optimizer does not come back from its "
        r"state_dict"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_plugins_are_one_line_before_anything_is_written(case, data, tmp_path):
    source, message = BAD[case]
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    with pytest.raises(UserError, match=message):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data), clock=StillClock(), plugin=bad)
    assert not (tmp_path / "run").exists()


def test_missing_plugin_and_misplaced_options(data, tmp_path):
    with pytest.raises(UserError, match=r"^plugin file not found: .*nowhere\.py$"):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data), plugin=tmp_path / "nowhere.py")
    with pytest.raises(UserError, match=r"^plugin\.options given without --plugin FILE$"):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data, "plugin.options.lr_scale=2"))
    assert not (tmp_path / "run").exists()


def test_numpy_and_torch_numbers_from_hooks_are_numbers(data, tmp_path):
    plugin = tmp_path / "numbers.py"
    plugin.write_text("CRAM_PLUGIN_API = 1\nimport numpy as np\nimport torch\n"
                      "def batch_size(f, train, options):\n    return np.int64(8)\n"
                      "def lr_factor(f, train, options):\n    return torch.tensor(0.5)\n")
    summary = pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                       overrides=overrides(data), clock=StillClock(), plugin=plugin)
    assert summary["steps"] == STEPS
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["batch_size"] == 8 and first["lr"] == pytest.approx(0.5e-3)


def test_a_folder_and_an_oversized_batch_are_refused(data, tmp_path):
    (tmp_path / "ideas").mkdir()
    with pytest.raises(UserError, match=r"^plugin .*ideas is a folder; give the \.py file"):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data), plugin=tmp_path / "ideas")
    with pytest.raises(UserError, match=r"^train\.batch_size=1000000000 is more than the "
                                        r"[\d,]+ train rows of .*: one step would see rows twice"):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data, "train.batch_size=1000000000"))
    assert not (tmp_path / "run").exists()
