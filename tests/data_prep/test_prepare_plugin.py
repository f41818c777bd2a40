"""`cram prepare --plugin FILE`: a keep_document hook filters the cleaned documents of the demo
corpus; the count it dropped is printed and in the manifest, the data dir keeps a copy of the
file, its hash and options enter `data_sha256`, verification rehashes the copy, and every bad
input is one line before anything is written. The data dirs are small (the first 70 documents,
the language reference topics, vocab 2000, no trash filter: no reference tokenizer to train),
so each prepares in under a second."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from crambench.errors import UserError
from crambench.shell.cli import main
from data_prep import open_data_dir
from data_prep.clean import CleanCounts, clean_documents
from data_prep.keep_document import option_pair
from data_prep.shards import data_sha256, manifest_data_sha256
from data_prep.sources import parse_source
from data_prep.verify import verify_data_dir

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "plugins" / "document_filter.py"
LEGACY = ROOT / "tests" / "fixtures" / "legacy_run" / "data"
MAX_DOCS = 70
ARGS = ["--source", "demo", "--vocab-size", "2000", "--max-docs", str(MAX_DOCS),
        "--val-fraction", "0.1", "--trash-cutoff", "off", "--quiet"]
RUNS = {
    "plain": [],
    "filter": ["--plugin", str(EXAMPLE), "--plugin-option", "min_alpha=0.8"],
    "filter_07": ["--plugin", str(EXAMPLE), "--plugin-option", "min_alpha=0.7"],
    "words_alpha": ["--plugin", str(EXAMPLE), "--plugin-option", "min_words=20",
                    "--plugin-option", "min_alpha=0.8"],
    "alpha_words": ["--plugin", str(EXAMPLE), "--plugin-option", "min_alpha=0.8",
                    "--plugin-option", "min_words=20"],
}
DROPPED = re.compile(r"(\d+) by the plug-in\)")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """made(name) -> (data dir, manifest, the `wrote` line) for a key of RUNS, prepared once
    with `cram prepare`."""
    root, done = tmp_path_factory.mktemp("prepared"), {}

    def make(name: str):
        if name not in done:
            out = root / name
            printed = io.StringIO()  # capsys is per test; the dirs are per module
            with contextlib.redirect_stdout(printed):
                assert main(["prepare", *ARGS, "--out", str(out), *RUNS[name]]) == 0
            done[name] = (out, json.loads((out / "manifest.json").read_text()),
                          printed.getvalue().strip())
        return done[name]
    return make


def example_hook():
    spec = importlib.util.spec_from_file_location("document_filter_by_hand", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.keep_document


def dropped_by_hand(options: dict) -> tuple[int, int]:
    """(documents the example drops, documents it sees) over the cleaned demo documents."""
    keep = example_hook()
    texts = [text for text, _ in clean_documents([parse_source("demo")], CleanCounts(),
                                                 max_docs=MAX_DOCS)]
    return sum(not keep(text, dict(options)) for text in texts), len(texts)


def test_the_example_drops_what_it_says_and_the_count_is_printed_and_recorded(made):
    out, manifest, line = made("filter")
    counts = manifest["pipeline"]["counts"]
    dropped, seen = dropped_by_hand({"min_alpha": 0.8})
    assert 0 < dropped < seen
    assert counts["dropped_by_plugin"] == dropped == int(DROPPED.search(line).group(1))
    assert counts["documents_kept"] == seen - dropped == counts["documents_packed"]
    plain = made("plain")[1]["pipeline"]["counts"]
    assert plain["dropped_by_plugin"] == 0 and plain["documents_kept"] == seen
    assert "by the plug-in" not in made("plain")[2] and "plug-in" not in made("plain")[2]
    assert f"with the plug-in {EXAMPLE} (min_alpha=0.8), sha256 " in line


def test_another_option_value_drops_other_documents_and_changes_data_sha256(made):
    strict, looser = made("filter")[1], made("filter_07")[1]
    dropped = looser["pipeline"]["counts"]["dropped_by_plugin"]
    assert dropped == dropped_by_hand({"min_alpha": 0.7})[0]
    assert dropped < strict["pipeline"]["counts"]["dropped_by_plugin"]
    assert looser["pipeline"]["settings"]["plugin"]["options"] == {"min_alpha": 0.7}
    hashes = {strict["data_sha256"], looser["data_sha256"], made("plain")[1]["data_sha256"]}
    assert len(hashes) == 3
    for manifest in (strict, looser):
        assert manifest_data_sha256(manifest) == manifest["data_sha256"]


def test_the_data_dir_keeps_the_file_and_records_it(made, capsys):
    out, manifest, _ = made("filter")
    assert (out / "code" / "plugin.py").read_bytes() == EXAMPLE.read_bytes()
    assert manifest["pipeline"]["settings"]["plugin"] == {
        "file": "code/plugin.py", "sha256": hashlib.sha256(EXAMPLE.read_bytes()).hexdigest(),
        "options": {"min_alpha": 0.8}}
    assert verify_data_dir(out)["data"].data_sha256 == manifest["data_sha256"]
    open_data_dir(out, verify_hashes=True)
    assert main(["prepare", "--verify", str(out)]) == 0
    assert ", with the plug-in code/plugin.py (min_alpha=0.8), sha256 " in capsys.readouterr().out
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary dirs


def test_the_options_as_given_enter_data_sha256_in_any_order(made):
    given = {name: made(name)[1] for name in ("filter", "words_alpha", "alpha_words")}
    hashes = {name: manifest["data_sha256"] for name, manifest in given.items()}
    # min_words=20 is the example's default: the same rows, another recipe, another hash
    shards = {name: [s["sha256"] for s in manifest["shards"]] for name, manifest in given.items()}
    assert shards["words_alpha"] == shards["filter"] and hashes["words_alpha"] != hashes["filter"]
    assert hashes["words_alpha"] == hashes["alpha_words"]
    assert manifest_data_sha256(given["alpha_words"]) == hashes["alpha_words"]


def test_a_dir_without_plugin_keeps_its_hash(made):
    _, manifest, _ = made("plain")
    settings = manifest["pipeline"]["settings"]
    assert settings["plugin"] is None
    without = {key: value for key, value in settings.items() if key != "plugin"}
    assert data_sha256(manifest["shards"], without) == manifest["data_sha256"]
    legacy = json.loads((LEGACY / "manifest.json").read_text())
    assert "plugin" not in legacy["pipeline"]["settings"]
    assert open_data_dir(LEGACY, verify_hashes=True).data_sha256 == legacy["data_sha256"]
    verify_data_dir(LEGACY)


def test_an_edited_or_missing_copy_is_refused_by_verification(made, tmp_path, capsys):
    copy = Path(shutil.copytree(made("filter")[0], tmp_path / "data"))
    plugin = copy / "code" / "plugin.py"
    plugin.write_text(plugin.read_text() + "# edited\n")
    assert main(["prepare", "--verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "code/plugin.py does not match the plugin sha256 in" in err
    with pytest.raises(UserError, match="the data dir's plug-in was changed after preparation"):
        open_data_dir(copy, verify_hashes=True)
    plugin.unlink()
    with pytest.raises(UserError, match=r"code/plugin\.py is missing: .* records the plug-in"):
        verify_data_dir(copy)


BAD = {
    "no hook": ("CRAM_PLUGIN_API = 1\ndef lr_factor(f, train, options):\n    return 1.0\n",
                [], r"bad\.py defines no keep_document hook; cram prepare runs only that hook"),
    "raises": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n    return 1 / 0\n",
               [], r"bad\.py: hook keep_document raised ZeroDivisionError: division by zero"),
    "not a bool": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n"
                   "    return 'yes'\n",
                   [], r"bad\.py: hook keep_document returned 'yes' \(str\), not True or False"),
    "an int": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n    return 1\n",
               [], r"bad\.py: hook keep_document returned 1 \(int\), not True or False"),
    "raises later": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n"
                     "    if 'fox' not in text:  # in the first text it is given, alone\n"
                     "        raise ValueError('not this one')\n    return True\n",
                     [], r"bad\.py: hook keep_document raised ValueError: not this one"),
    "wrong option": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n"
                     "    return len(text) > float(options['min_chars'])\n",
                     ["--plugin-option", "min_chars=many"],
                     r"bad\.py: hook keep_document raised ValueError: could not convert"),
    "at random": ("CRAM_PLUGIN_API = 1\nimport random\n"
                  "def keep_document(text, options):\n    return random.random() < 0.5\n",
                  [], r"bad\.py: hook keep_document answered (True|False) and then (True|False) "
                      r"for the same document; it must decide from the text and the options"),
    "drops everything": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n"
                         "    return 'fox' in text  # the first text it is given, alone\n",
                         [], r"all \d+ documents were filtered out \(.*, \d+ by the plug-in's "
                             r"keep_document hook"),
    "twice": ("CRAM_PLUGIN_API = 1\ndef keep_document(text, options):\n    return True\n",
              ["--plugin-option", "a=1", "--plugin-option", "a=2"],
              r"--plugin-option a is given twice"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_plugins_are_one_line_before_anything_is_written(case, tmp_path, capsys):
    source, extra, message = BAD[case]
    (tmp_path / "bad.py").write_text(source)
    out = tmp_path / "out"
    assert main(["prepare", *ARGS, "--out", str(out), "--plugin", str(tmp_path / "bad.py"),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.py"]


@pytest.mark.parametrize(("args", "message"), [
    (["--plugin", "nowhere.py"], r"^cram prepare: error: plugin file not found: nowhere\.py$"),
    (["--plugin-option", "min_alpha=0.7"],
     r"^cram prepare: error: --plugin-option given without --plugin FILE$"),
    (["--plugin", str(EXAMPLE), "--plugin-option", "min_alpha"],
     r"^cram prepare: error: argument --plugin-option: 'min_alpha' is not KEY=VALUE"),
    (["--plugin", str(EXAMPLE), "--plugin-option", "=0.7"],
     r"argument --plugin-option: '=0\.7' is not KEY=VALUE"),
])
def test_bad_command_lines_are_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", *ARGS, "--out", "out", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err.strip()), err
    assert not (tmp_path / "out").exists()


def test_numpy_bools_and_other_hooks_in_the_file(tmp_path):
    """A numpy bool is a bool; a file that also defines pretraining hooks is taken, and only
    keep_document runs."""
    plugin = tmp_path / "both.py"
    plugin.write_text("CRAM_PLUGIN_API = 1\nimport numpy as np\n"
                      "def keep_document(text, options):\n"
                      "    return np.bool_(len(text) % 2 == options['parity'])\n"
                      "def lr_factor(f, train, options):\n    raise RuntimeError('not run')\n")
    from data_prep.prepare import prepare

    manifest = prepare(["demo"], tmp_path / "out", vocab_size=2000, max_docs=MAX_DOCS,
                       val_fraction=0.1, trash_cutoff=None, quiet=True, plugin=plugin,
                       plugin_options={"parity": 0})
    texts = [text for text, _ in clean_documents([parse_source("demo")], CleanCounts(),
                                                 max_docs=MAX_DOCS)]
    assert manifest["pipeline"]["counts"]["dropped_by_plugin"] == sum(
        len(text) % 2 == 1 for text in texts)


def test_option_values_are_yaml_scalars():
    assert option_pair("min_alpha=0.7") == ("min_alpha", 0.7)
    assert option_pair("min_words=20") == ("min_words", 20)
    assert option_pair("rate=1e-3") == ("rate", 0.001)  # YAML 1.1 alone reads a string
    assert option_pair("lower=true") == ("lower", True)
    assert option_pair("name=wiki=en") == ("name", "wiki=en")
    assert option_pair("empty=") == ("empty", "")
    assert option_pair("huge=.inf") == ("huge", ".inf")  # JSON holds no infinity
    assert option_pair("list=[1, 2]") == ("list", "[1, 2]")
    assert isinstance(option_pair("x=2")[1], int)
