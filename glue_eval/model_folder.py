"""The identity of an outside model's folder: the files that make the model what it is, each with
its sha256 and size, and one sha256 over them (`folder_sha256`).

`cram eval --model` records it in the results (`outside_model.files`, `.folder_sha256`);
`cram submit --results` and `cram leaderboard validate --model` recompute it the same way from
the folder. Torch-free (hashlib, json): the validator imports it.

The files are the ones transformers reads to build the model and its tokenizer: `config.json`,
the weight files (single or sharded, with their index), the tokenizer files, and any Python
module the folder ships (remote code, e.g. a `cram export` folder). A model card, a training
log or a `.git` folder beside them is not part of the model and is left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from crambench.contracts import sha256_file

# Weight files transformers reads, single or sharded (with their index).
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin",
                   "pytorch_model.bin.index.json")
CONFIG_PATTERNS = ("config.json", "*.py")
# The files AutoTokenizer reads, whichever tokenizer family the model uses (WordPiece's
# vocab.txt, BPE's vocab.json + merges.txt, SentencePiece's *.model).
TOKENIZER_PATTERNS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                      "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model")


def _names(folder: Path, patterns) -> list[str]:
    return sorted({p.name for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def weight_files(folder) -> list[dict]:
    """[{"file", "sha256"}] of the weight files in `folder`, sorted by name."""
    folder = Path(folder)
    return [{"file": name, "sha256": sha256_file(folder / name)}
            for name in _names(folder, WEIGHT_PATTERNS)]


def identity_files(folder) -> list[dict]:
    """[{"file", "sha256", "bytes"}] of the config, weight, tokenizer and code files in
    `folder`, sorted by name."""
    folder = Path(folder)
    names = _names(folder, (*CONFIG_PATTERNS, *WEIGHT_PATTERNS, *TOKENIZER_PATTERNS))
    return [{"file": name, "sha256": sha256_file(folder / name),
             "bytes": (folder / name).stat().st_size} for name in names]


def listing_sha256(files: list[dict]) -> str:
    """The sha256 of the weights (`model_sha256`): of the one file when there is one, else of
    the listing, as `folder_sha256` computes it."""
    return files[0]["sha256"] if len(files) == 1 else folder_sha256(files)


def folder_sha256(files: list[dict]) -> str:
    """The sha256 of the sorted listing [{"file", "sha256"}, ...] as canonical JSON (sizes are
    left out: the hashes fix them). Always a listing, even of one file, so that a folder is
    never confused with its weights file."""
    listing = sorted(({"file": f["file"], "sha256": f["sha256"]} for f in files),
                     key=lambda f: f["file"])
    text = json.dumps(listing, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def listing_differences(recorded: list[dict], actual: list[dict]) -> list[str]:
    """What changed between two listings, one phrase per file: "config.json changed",
    "vocab.txt is new", "model.safetensors is missing"."""
    before = {f["file"]: f["sha256"] for f in recorded}
    now = {f["file"]: f["sha256"] for f in actual}
    return ([f"{name} changed" for name in sorted(before) if name in now
             and now[name] != before[name]]
            + [f"{name} is missing" for name in sorted(set(before) - set(now))]
            + [f"{name} is new" for name in sorted(set(now) - set(before))])
