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
    ("span_masking.py", ["plugin.options.mean_span=2"]),
    ("label_smoothing.py", ["plugin.options.eps=0.2"]),
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
    assert resumed["code"] == straight["code"] and resumed["code"]["plugin_sha256"] is not None
    assert resumed["code"]["init_sha256"] is not None  # carried by the checkpoints
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
    if "plugin" not in saved:  # the harness's own model: export ships it, logits checked
        from cramming.export import export_run

        exported = export_run(tmp_path / "resumed", tmp_path / "hf")
        assert exported["max_abs_diff"] < 1e-4


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


def test_an_objective_plugin_is_open_track_and_its_code_record_validates(data, tmp_path,
                                                                         quick_probes, capsys):
    from safetensors.torch import save

    from crambench.shell.cli import main
    from crambench.tensor_hash import tensors_sha256_of_bytes
    from cramming import load_config
    from cramming.model import CrammedBert

    source = tmp_path / "label_smoothing.py"
    shutil.copy(EXAMPLES / "label_smoothing.py", source)
    run = tmp_path / "run"
    summary = plugin_run(data, run, source, ["plugin.options.eps=0.2"])
    code = summary["code"]
    assert code["plugin_hooks"] == ["objective"]
    assert code["plugin_options"] == {"eps": 0.2}
    assert code["version"] == summary["code_version"] and code["sha256"] == summary["code_sha256"]
    assert code["local_changes"] == (run / "code" / "harness.diff").is_file()
    # init_sha256: the weights the recipe builds from its seed, before any step
    cfg = load_config(run / "config.yaml", saved=True)
    torch.manual_seed(cfg.seed)
    built = CrammedBert(cfg.model, dropout=cfg.train.dropout)
    assert code["init_sha256"] == tensors_sha256_of_bytes(save(built.state_dict()), "init")
    # the logged loss is the plain MLM loss, below the smoothed loss that was minimized
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(record["loss"] > 0 for record in records)
    evaluate_probes(run, quiet=True, device="cpu")
    entry_path = tmp_path / "entry.json"
    assert main(["submit", "--run", str(run), "--name", "smooth", "--out", str(entry_path)]) == 0
    entry = json.loads(entry_path.read_text())
    assert entry["code"] == code
    manifest = json.loads((data / "manifest.json").read_text())
    assert entry["data"]["settings"] == manifest["pipeline"]["settings"]
    assert "the plug-in's objective hook changes what is trained for" in entry["track_reason"]
    assert main(["leaderboard", "validate", str(entry_path), "--run", str(run)]) == 0
    capsys.readouterr()
    # a hidden objective hook is found in the run's copy without running it
    entry["code"]["plugin_hooks"] = []
    entry["track_reason"] = entry["track_reason"].split("; the plug-in")[0]
    entry["data"]["settings"]["dedup"] = "off"  # a data setting the data dir does not have
    entry_path.write_text(json.dumps(entry))
    assert main(["leaderboard", "validate", str(entry_path), "--run", str(run)]) != 0
    out = capsys.readouterr().out
    assert "code.plugin_hooks [] are not the hooks ['objective'] that code/plugin.py defines" \
        in out
    assert "data.settings differ from the pipeline settings" in out


def test_an_edited_or_missing_copy_stops_eval_and_submit_whatever_its_hooks(data, tmp_path,
                                                                           quick_probes):
    """wsd.py changes only the schedule, so loading the model never reads the copy: eval and
    submit check it all the same, as the run's code is part of what is scored."""
    from leaderboard.submit import submit

    run = tmp_path / "run"
    plugin_run(data, run, EXAMPLES / "wsd.py")
    evaluate_probes(run, quiet=True, device="cpu")
    copy = run / "code" / "plugin.py"
    copy.write_text(copy.read_text() + "# edited\n")
    with pytest.raises(UserError, match=r"code/plugin\.py does not match the plugin_sha256 in "
                                        r".*summary\.json: the run's code was changed"):
        evaluate_probes(run, quiet=True, device="cpu", force=True)
    with pytest.raises(UserError, match=r"does not make a valid entry: .*the run's code was "
                                        r"changed after it trained"):
        submit(run, "wsd", out=tmp_path / "entry.json")
    copy.unlink()
    with pytest.raises(UserError, match=r"code/plugin\.py is missing: the run trained with a "
                                        r"plug-in"):
        evaluate_probes(run, quiet=True, device="cpu", force=True)
    assert not (tmp_path / "entry.json").exists()


def test_a_mask_hook_on_several_ranks_masks_each_share_as_that_rank(data, tmp_path):
    """Ranks mask their own rows with their own generators; one process redoing a step of two
    ranks (the end record's replay) masks each share as its rank did."""
    from crambench.plugin import load_plugin
    from cramming import load_config
    from cramming.plugins import mask_rows

    plugin = load_plugin(EXAMPLES / "span_masking.py")
    cfg = load_config("tiny", overrides(data))
    cfg.plugin.file, cfg.plugin.sha256 = "code/plugin.py", plugin.sha256
    special = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    full = torch.randint(5, cfg.model.vocab_size, (16, 32),
                         generator=torch.Generator().manual_seed(1))
    position = 3  # the batch's first stream position: rank 1 holds global rows 0, 2, ...
    whole = mask_rows(full, torch.arange(16), 16, cfg=cfg, special_ids=special, step=7,
                      world_size=2, position=position)
    shares = []
    for rank in range(2):
        index = torch.arange((rank - position) % 2, 16, 2)
        share = mask_rows(full[index], index, 16, cfg=cfg, special_ids=special, step=7,
                          rank=rank, world_size=2, position=position)
        assert torch.equal(share[0], whole[0][index]) and torch.equal(share[1], whole[1][index])
        shares.append(share[1] != -100)
    assert not torch.equal(shares[0], shares[1])  # each rank draws its own masks
    selected = whole[1] != -100
    assert 0.1 < selected.float().mean() < 0.35  # about train.mask_prob = 0.25
    runs = (selected[:, 1:] & selected[:, :-1]).sum() / selected.sum()
    assert runs > 0.3  # neighbours masked together: spans, not single tokens


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
                   "    return 8.5\n",
                   r"bad\.py: hook batch_size returned 8\.5 at f=0, not an int >= 1"),
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
    "global random state": ("CRAM_PLUGIN_API = 1\nimport torch\n"
                            "def mask_tokens(ids, special, vocab, generator, train, options):\n"
                            "    labels = torch.where(torch.rand(ids.shape) < 0.2, ids, -100)\n"
                            "    return ids.clone(), labels\n",
                            r"bad\.py: hook mask_tokens draws from a global random state"),
    "masks of the wrong shape": (
        "CRAM_PLUGIN_API = 1\n"
        "def mask_tokens(ids, special, vocab, generator, train, options):\n"
        "    return ids[:, 1:], ids[:, 1:]\n",
        r"bad\.py: hook mask_tokens returned inputs of torch\.int64 \(2, 7\), not integer "
        r"ids of the rows' shape \(2, 8\)"),
    "labels outside the vocabulary": (
        "CRAM_PLUGIN_API = 1\n"
        "def mask_tokens(ids, special, vocab, generator, train, options):\n"
        "    return ids.clone(), ids + vocab\n",
        r"bad\.py: hook mask_tokens returned labels that are neither -100 nor ids"),
    "objective not a pair": (
        "CRAM_PLUGIN_API = 1\ndef objective(model, inputs, labels, options):\n"
        "    return model(inputs, labels)[0].item()\n",
        r"bad\.py: hook objective returned float, not a tuple \(loss, mlm_loss\)"),
    "objective without a gradient": (
        "CRAM_PLUGIN_API = 1\nimport torch\n"
        "def objective(model, inputs, labels, options):\n"
        "    with torch.no_grad():\n"
        "        loss = model(inputs, labels)[0]\n"
        "    return loss, loss\n",
        r"bad\.py: hook objective returned a loss with no gradient"),
    "masks nothing": (
        "CRAM_PLUGIN_API = 1\nimport torch\n"
        "def mask_tokens(ids, special, vocab, generator, train, options):\n"
        "    return ids.clone(), torch.full_like(ids, -100)\n",
        r"bad\.py: hook mask_tokens returned labels that mask no position of its 2 rows"),
    "a model with another loss": (
        "CRAM_PLUGIN_API = 1\nfrom cramming.model import CrammedBert\n"
        "class Half(CrammedBert):\n"
        "    def forward(self, ids, labels=None, **kw):\n"
        "        loss, logits = super().forward(ids, labels, **kw)\n"
        "        return loss / 2, logits\n"
        "def build_model(cfg, options, dropout):\n    return Half(cfg, dropout=dropout)\n",
        r"bad\.py: the model from hook build_model returned a loss of [\d.]+, not the MLM "
        r"cross-entropy of its logits \([\d.]+\); .* with an objective hook instead"),
    "objective under compile": (
        "CRAM_PLUGIN_API = 1\ndef objective(model, inputs, labels, options):\n"
        "    loss = model(inputs, labels)[0]\n    return loss, loss\n",
        r"bad\.py: hook objective with impl\.compile=true", ["impl.compile=true"]),
    "a hook not written as a def": (
        "CRAM_PLUGIN_API = 1\ndef _factor(f, train, options):\n    return 1.0\n"
        "lr_factor = _factor\n", r"bad\.py: hook lr_factor is not a top-level def of the file"),
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
    source, message, *extra = BAD[case]
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    with pytest.raises(UserError, match=message):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data, *(extra[0] if extra else [])), clock=StillClock(),
                 plugin=bad)
    assert not (tmp_path / "run").exists()


def test_missing_plugin_and_misplaced_options(data, tmp_path):
    with pytest.raises(UserError, match=r"^plugin file not found: .*nowhere\.py$"):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data), plugin=tmp_path / "nowhere.py")
    with pytest.raises(UserError, match=r"^plugin\.options given without --plugin FILE$"):
        pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                 overrides=overrides(data, "plugin.options.lr_scale=2"))
    for override in ("plugin.sha256=abc", "plugin.file=elsewhere.py"):  # with --plugin too
        with pytest.raises(UserError, match=r"^plugin\.file and plugin\.sha256 are set by "
                                            r"--plugin FILE"):
            pretrain(data, tmp_path / "run", budget_s=60, preset="tiny", quiet=True,
                     overrides=overrides(data, override), plugin=EXAMPLES / "wsd.py")
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
