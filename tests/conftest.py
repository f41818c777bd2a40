"""Shared fixtures. `../shared/data` (real GLUE files and corpus text) sits beside the repo.

Also the small things several test modules build alike: one torch thread per test, a tiny
encoder shape, a tiny run dir (data dir + random 1-layer encoder in final/), and a tiny
outside model (a random BERT saved by transformers, for `cram eval --model`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing.process
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots
CHROMIUM = "/usr/bin/chromium"

WORDS = {
    "subject": ["the cat", "a dog", "my neighbour", "the old farmer", "a child", "the teacher"],
    "verb": ["sees", "likes", "follows", "paints", "carries", "finds"],
    "object": ["a red ball", "the small boat", "an apple", "the letter", "a blue kite"],
}


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    # Progress bars and logs stay quiet in tests, as under CI.
    monkeypatch.setenv("CI", os.environ.get("CI", "true"))


# The tiers (`make test-fast` runs the first; `make test` and CI run all):
#   fast        no marker: no training, no fine-tuning, no other process; a test or so a second
#   train       trains or fine-tunes a model (on a fake clock where real time is not checked)
#   subprocess  starts another process: the CLI as a user runs it, torch's launcher, a lock holder
#   slow        a whole pipeline (a trained and scored run, the demo, the planner's measurements)
TIERS = ("train", "subprocess", "slow")
FAST_TEST_LIMIT_S = 2.0  # a fast-tier test slower than this belongs in another tier


def _fast_tier_only(config) -> bool:
    """`-m` deselects every slower tier (as `make test-fast` asks)."""
    expression = config.getoption("markexpr") or ""
    return all(f"not {tier}" in expression for tier in TIERS)


@pytest.fixture(autouse=True, scope="session")
def _fast_tier_guard(request):
    """In the fast tier, training and other processes fail the test with the marker it needs:
    the tier's promise holds by construction, not by a list kept by hand. Session-scoped, so it
    is in place before any module's or session's fixture trains."""
    if not _fast_tier_only(request.config):
        yield
        return

    def refuse(what: str, marker: str):
        def refused(*args, **kwargs):
            pytest.fail(f"{what} in the fast tier: mark the test @pytest.mark.{marker}",
                        pytrace=False)
        return refused

    import cramming.compress.recovery
    import cramming.train.pretrain
    import glue_eval.evaluate
    import glue_eval.finetune

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse("a subprocess", "subprocess"))
        patch.setattr(multiprocessing.process.BaseProcess, "start",
                      refuse("a process (multiprocessing)", "subprocess"))
        for module, name in ((cramming.train.pretrain, "train_loop"),
                             (cramming.compress.recovery, "train_loop"),
                             (glue_eval.finetune, "finetune"), (glue_eval.evaluate, "finetune")):
            patch.setattr(module, name, refuse(f"{module.__name__}.{name}", "train"))
        yield


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name every fast-tier test that took longer than FAST_TEST_LIMIT_S (setup, call and
    teardown together): it slows the inner loop and belongs in a slower tier."""
    spent: dict[str, float] = {}
    fast: set[str] = set()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) not in ("setup", "call", "teardown"):
                continue
            spent[report.nodeid] = spent.get(report.nodeid, 0.0) + report.duration
            if not set(TIERS) & set(report.keywords):
                fast.add(report.nodeid)
    over = sorted((round(spent[n], 1), n) for n in fast if spent[n] > FAST_TEST_LIMIT_S)
    if over:
        terminalreporter.section("fast-tier tests over 2 s (mark them train, subprocess or "
                                 "slow)")
        for seconds, nodeid in reversed(over):
            terminalreporter.write_line(f"{seconds:6.1f}s  {nodeid}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small models gain nothing from more on a shared CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def edited_entry(entry_path: Path, tmp_path: Path, change) -> Path:
    """A copy of an entry file with `change(entry)` applied, for tamper tests."""
    entry = json.loads(entry_path.read_text())
    change(entry)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(entry))
    return path


def write_sweep_run(path: Path, *, val_loss, status="complete", mask_prob=0.25,
                    hardware="cpu (x86)") -> None:
    """A sweep's run dir as `cram sweep report` reads it (summary.json and config.yaml), written
    without training: 100 steps, 409,600 tokens in 40 s."""
    import yaml

    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({
        "model": {"vocab_size": 8192},
        "train": {"mask_prob": mask_prob, "mask_token_prob": 0.8, "random_token_prob": 0.1}}))
    (path / "summary.json").write_text(json.dumps({
        "status": status, "stopped_by": "budget", "steps": 100, "tokens_seen": 409600,
        "train_elapsed_s": 40.0, "val_loss": val_loss if status == "complete" else None,
        "hardware": {"device_names": [hardware]}, "data_sha256": "a" * 64,
        "tokenizer_sha256": "b" * 64}))


def grammar_sentence(rng: random.Random) -> str:
    """One sentence of a small subject-verb-object grammar."""
    return " ".join(rng.choice(WORDS[k]) for k in ("subject", "verb", "object")) + "."


def tiny_model_config(vocab_size: int):
    """A 1-layer, 32-wide encoder: fine-tunes in seconds on one CPU thread."""
    from cramming import ModelConfig

    return ModelConfig(vocab_size=vocab_size, seq_len=128, hidden=32, layers=1, heads=2,
                       ffn_hidden=64, head_hidden=32)


def make_grammar_data(root: Path, **prepare_args) -> Path:
    """root/data: 300 documents of the small grammar, prepared with vocab 256 (and
    `prepare_args`, e.g. seq_len=32)."""
    from data_prep import prepare

    rng = random.Random(0)
    docs = [" ".join(grammar_sentence(rng) for _ in range(rng.randint(10, 30)))
            for _ in range(300)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    prepare([str(root / "corpus.txt")], root / "data", vocab_size=256, quiet=True,
            **prepare_args)
    return root / "data"


def make_tiny_run(root: Path) -> Path:
    """A data dir (small grammar corpus, 30% val) and a run dir whose final/ holds a random
    1-layer encoder and its tokenizer, a config.yaml naming the data dir, and a summary.json
    with the hashes of final/ (what `cram eval` checks before it scores a model)."""
    import torch

    from crambench.contracts import sha256_file
    from cramming import CrammedBert, save_pretrained
    from data_prep import open_data_dir

    data = open_data_dir(make_grammar_data(root, val_fraction=0.3))
    final = root / "run" / "final"
    final.mkdir(parents=True)
    torch.manual_seed(0)
    save_pretrained(CrammedBert(tiny_model_config(data.vocab_size)), final)
    shutil.copy(data.tokenizer_path, final / "tokenizer.json")
    (root / "run" / "config.yaml").write_text(f"data:\n  path: {root / 'data'}\n")
    (root / "run" / "summary.json").write_text(json.dumps({
        "format": "cram-run/1", "model_sha256": sha256_file(final / "model.safetensors"),
        "tokenizer_sha256": sha256_file(final / "tokenizer.json")}))
    return root / "run"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny run dir per test module (modules write different files under its eval/)."""
    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The embedded demo corpus prepared as `cram prepare --source demo` prepares it (vocab
    8192, rows of 128), once per session: tests read it, never write it."""
    from data_prep import prepare

    data = tmp_path_factory.mktemp("demo") / "data"
    prepare(["demo"], data, vocab_size=8192, seq_len=128, quiet=True)
    return data


@pytest.fixture(scope="session")
def scored_tiny_run(tmp_path_factory, shared_data):
    """(run dir, GLUE dir) of a real tiny run: the demo corpus (100 documents), 10 s of
    pretraining on one thread, scored on RTE with the quick protocol. Made once per session;
    tests read it and copy it before changing anything. The data dir is the run's sibling."""
    import torch

    from cramming import pretrain
    from data_prep import prepare
    from glue_eval import evaluate_glue

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other work: a second thread only contends
    try:
        root = tmp_path_factory.mktemp("scored")
        manifest = prepare(["demo"], root / "data", vocab_size=8192, max_docs=100,
                           val_fraction=0.1, quiet=True)
        # 100 documents fill fewer than 8192 WordPiece tokens; the model takes the real size.
        pretrain(root / "data", root / "run", budget_s=10, preset="tiny", device="cpu",
                 overrides=[f"model.vocab_size={manifest['vocab_size']}"], quiet=True)
        glue = shared_data / "glue"
        evaluate_glue(root / "run", tasks="rte", glue_dir=glue, protocol="quick", quiet=True,
                      device="cpu")
    finally:
        torch.set_num_threads(threads)
    return root / "run", glue


# The trainer tests' grammar: a place makes each sentence long enough to fill rows of 32.
PRETRAIN_WORDS = [
    ["the cat", "a dog", "my neighbour", "the old farmer", "a child", "the teacher",
     "her brother", "the captain", "a stranger", "the baker"],
    ["sees", "likes", "follows", "paints", "carries", "finds", "remembers", "greets"],
    ["a red ball", "the small boat", "an apple", "the letter", "a blue kite", "the heavy box",
     "a bright lamp", "the wooden chair"],
    ["in the garden", "near the river", "at the market", "behind the house", "on the hill",
     "under the bridge", "by the station"],
]


@pytest.fixture(scope="session")
def pretrain_data(tmp_path_factory):
    """A data dir of a few hundred short documents of a small grammar (vocab 256, rows of 32):
    learnable by the trainer in seconds."""
    from data_prep import prepare

    root = tmp_path_factory.mktemp("train-data")
    rng = random.Random(0)
    docs = [" ".join(" ".join(rng.choice(words) for words in PRETRAIN_WORDS) + "."
                     for _ in range(rng.randint(4, 8)))
            for _ in range(400)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    prepare([str(root / "corpus.txt")], root / "data", vocab_size=256, seq_len=32,
            val_fraction=0.1, quiet=True)
    return root / "data"


@pytest.fixture
def pretrain_overrides(pretrain_data):
    """The `tiny` preset fitted to pretrain_data, on one thread."""
    from data_prep import open_data_dir

    vocab = open_data_dir(pretrain_data).vocab_size
    return [f"model.vocab_size={vocab}", "model.seq_len=32", "impl.threads=1"]


class TickingClock:
    """Fake time: every reading advances by `tick` seconds, whatever the machine's speed;
    `stall(seconds)` makes the next reading jump (a slow step, a hung disk)."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now

    def stall(self, seconds):
        self.now += seconds


def pretrain_small_run(root: Path, overrides=()) -> Path:
    """ROOT/run: a finished run of a 1-layer, hidden-32 model, pretrained for 6 fake seconds
    (TickingClock) on a small grammar corpus prepared into ROOT/data (rows of 32 tokens);
    `overrides` are added to the config's (e.g. a component)."""
    import torch

    from cramming.train.pretrain import pretrain
    from data_prep import open_data_dir, prepare

    rng = random.Random(0)
    words = ["the cat", "a dog", "sees", "likes", "a red ball", "the boat", "in the garden",
             "near the river", "my neighbour", "carries", "the letter", "follows"]
    docs = [" ".join(" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(6))
            for _ in range(300)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    prepare([str(root / "corpus.txt")], root / "data", vocab_size=256, seq_len=32,
            val_fraction=0.1, quiet=True)
    vocab = open_data_dir(root / "data").vocab_size
    threads = torch.get_num_threads()
    small = ["model.hidden=32", "model.heads=2", "model.layers=1", "model.ffn_hidden=64",
             "model.head_hidden=32", "impl.threads=1"]
    pretrain(root / "data", root / "run", budget_s=6, preset="tiny", quiet=True,
             overrides=[*small, f"model.vocab_size={vocab}", "model.seq_len=32", *overrides],
             clock=TickingClock(0.05))
    torch.set_num_threads(threads)
    return root / "run"


@pytest.fixture
def at_micro_batch(monkeypatch):
    """`at_micro_batch(n, action)` runs `action()` at the start of the n-th micro-batch of the
    trainer (e.g. a signal, as a user's Ctrl-C; a clock stall)."""
    from cramming.train import pretrain as module

    real = module.micro_step

    def install(n, action):
        calls = {"n": 0}

        def micro_step(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                action()
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "micro_step", micro_step)

    return install


# Run `cram ARGV` in a child process that SIGKILLs itself just before its N-th rename onto a
# path named NAME (os.replace: every atomic write and swap ends in one), as a power cut or
# `kill -9` would stop it: no cleanup, no exception handlers.
KILL_DRIVER = """
import os, signal, sys
name, n = sys.argv[1].rsplit(":", 1)
seen, real = [0], os.replace

def replace(src, dst, *args, **kwargs):
    base = os.path.basename(os.fspath(dst))
    if base == name or name == "*.partial" and base.endswith(".partial"):
        seen[0] += 1
        if seen[0] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)

os.replace = replace
from crambench.shell.cli import main
sys.exit(main(sys.argv[2:]))
"""


def cram_killed_at(kill: str, argv: list[str]) -> subprocess.CompletedProcess:
    """`cram ARGV`, killed (SIGKILL) before its N-th rename onto a file or folder named NAME
    (`kill` = "NAME:N"; "*.partial:N" counts renames to temporary names). Returns the process;
    its returncode is -9 when the kill point was reached."""
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", KILL_DRIVER, kill, *argv], env=env,
                          capture_output=True, text=True, timeout=120)


HOLD_LOCK = """
import sys, time
from crambench.locks import dir_lock
with dir_lock(sys.argv[1], owner=sys.argv[2]):
    print("locked", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def lock_held_elsewhere(target: Path, owner: str):
    """Another process holds `target`'s output lock (as a running `cram` command would) until
    the block ends; yields that process (its pid is what the refusal must name)."""
    import sys

    root = Path(__file__).resolve().parents[1]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(target), owner],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.kill()  # SIGKILL: no cleanup; the kernel drops the lock with the process
        holder.wait()
        holder.stdout.close()


def _chromium(*args, tmp_path) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True,
                          timeout=120, check=True)


def check_page_in_chromium(index: Path, tmp_path: Path, artifact: str) -> str:
    """Screenshot `index` into test-artifacts/ and return the rendered DOM."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package `chromium`)")
    url = index.resolve().as_uri()
    shot = tmp_path / "page.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, tmp_path=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / artifact)
    return _chromium("--dump-dom", url, tmp_path=tmp_path).stdout


# An outside model (`cram eval --model`): a tiny BERT saved as transformers saves one.
TINY_BERT_TASKS = {"rte": "RTE", "stsb": "STS-B"}


def glue_slice(shared_data: Path, root: Path, n_train: int = 48, n_dev: int = 24) -> Path:
    """A GLUE folder with the first rows of the real RTE and STS-B train and dev files."""
    for folder in TINY_BERT_TASKS.values():
        for split, n in (("train", n_train), ("dev", n_dev)):
            lines = (shared_data / "glue" / folder / f"{split}.tsv").read_text().splitlines()
            (root / "glue" / folder).mkdir(parents=True, exist_ok=True)
            (root / "glue" / folder / f"{split}.tsv").write_text("\n".join(lines[: n + 1]) + "\n")
    return root / "glue"


def save_tiny_bert(shared_data: Path, folder: Path) -> Path:
    """A 1-layer BERT (hidden 32) with random weights and a BERT tokenizer whose WordPiece
    vocabulary is trained on real RTE and SST-2 sentences, saved as transformers saves it."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    texts = []
    for task in ("RTE", "SST-2"):
        lines = (shared_data / "glue" / task / "train.tsv").read_text().splitlines()[1:400]
        texts += [field for line in lines for field in line.split("\t")]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=800, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    folder.mkdir(parents=True)
    vocab = sorted(wordpiece.get_vocab(), key=wordpiece.get_vocab().get)
    (folder / "vocab.txt").write_text("".join(token + "\n" for token in vocab))
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    (folder / "vocab.txt").unlink()  # tokenizer.json holds the vocabulary
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


@pytest.fixture
def quick_probes(monkeypatch):
    """The probes at a fraction of their rows and epochs, and a short latency timing: what
    is tested is that each variant evaluates, not its score."""
    import dataclasses
    import functools

    from cramming.compress import deployment
    from glue_eval import probes

    monkeypatch.setattr(probes, "PROBE_PROTOCOL", dataclasses.replace(
        probes.PROBE_PROTOCOL, epochs=1, max_train_rows=64, max_dev_rows=32))
    monkeypatch.setattr(probes, "MAX_TRAIN", 64)
    monkeypatch.setattr(probes, "MAX_DEV", 32)
    monkeypatch.setattr(deployment, "cpu_latency",
                        functools.partial(deployment.cpu_latency, min_run_s=0.01))
