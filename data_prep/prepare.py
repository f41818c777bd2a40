"""`prepare()`: corpora in, a data dir (contract `cram-data/1`) out.

Passes over the sources (each re-reads them; nothing holds the corpus in memory):
1. clean (normalize, drop short, drop exact duplicates unless `dedup="off"`, drop what a
   plug-in's keep_document hook refuses, data_prep.keep_document) -> train the
   tokenizer (`tokenizer_model`, data_prep.tokenizer_models; skipped with `tokenizer=`, which
   reuses an existing one);
2. only when the trash filter is on and the tokenizer is not a WordPiece of its reference
   size (data_prep.filters): clean -> train the reference WordPiece;
3. clean -> encode in batches -> trash filter -> split by document digest -> pack -> shards;
4. only for a curriculum (`order`, data_prep.order): the train shards, sorted.
The dir is built under a temporary name and renamed into place when complete. Each pass ends
with a progress line on stderr (crambench.progress), so a log shows where the time went.
The data settings (data_prep.settings) are recorded in the manifest and, where not at their
defaults, hashed into its data_sha256. A plug-in is copied into the dir (`code/plugin.py`).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.files import (
    atomic_dir,
    refuse_output_over_inputs,
    tidy,
    write_json_atomic,
    write_text_atomic,
)
from crambench.locks import dir_lock
from crambench.progress import bar, progress_line
from data_prep.clean import CleanCounts, clean_documents, texts
from data_prep.dedup import METHOD as DEDUP_METHOD
from data_prep.encode import encode_corpus
from data_prep.filters import MIN_CHARS, REFERENCE_VOCAB, TRASH_CUTOFF
from data_prep.keep_document import DocumentFilter, load_document_filter
from data_prep.manifest import DATA_FORMAT, MANIFEST, MAX_VOCAB, MIN_SEQ_LEN, SPLITS, TOKENIZER
from data_prep.normalize import MAX_WORD_CHARS
from data_prep.order import get_order, sort_train_rows
from data_prep.segment import MAX_DOC_CHARS
from data_prep.shards import data_sha256
from data_prep.sources import parse_source
from data_prep.tokenizer import SPECIAL_IDS, SPECIAL_TOKENS, threads
from data_prep.tokenizer_models import model_name, tokenizer_model

DEDUP = {"on": DEDUP_METHOD, "off": "off"}  # --dedup -> the manifest's `dedup` setting


def check_settings(sources, vocab_size, seq_len, val_fraction, max_docs, workers) -> None:
    if not sources:
        raise UserError("no --source given")
    if not len(SPECIAL_TOKENS) < vocab_size <= MAX_VOCAB:
        raise UserError(f"--vocab-size {vocab_size} out of range: must be more than "
                        f"{len(SPECIAL_TOKENS)} (special tokens) and at most {MAX_VOCAB} (uint16)")
    if seq_len < MIN_SEQ_LEN:
        raise UserError(f"--seq-len {seq_len} is too short (minimum {MIN_SEQ_LEN})")
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val-fraction {val_fraction} must be in [0, 1)")
    if max_docs is not None and max_docs < 1:
        raise UserError(f"--max-docs {max_docs} must be at least 1")
    if workers < 1:
        raise UserError(f"--workers {workers} must be at least 1")


def check_data_options(trash_cutoff, dedup, order, tokenizer_model_name) -> None:
    """The ablation options (data_prep.settings), before anything is read."""
    if trash_cutoff is not None and not (isinstance(trash_cutoff, int | float)
                                         and 0 < trash_cutoff < float("inf")):
        raise UserError(f"--trash-cutoff {trash_cutoff} must be a number above 0 (tokens per "
                        "character) or off")
    if dedup not in DEDUP:
        raise UserError(f"--dedup {dedup!r} must be one of {', '.join(DEDUP)}")
    get_order(order)
    if tokenizer_model_name is not None:
        tokenizer_model(tokenizer_model_name)


def prepare(sources: list[str], out, *, vocab_size: int = 32768, seq_len: int = 128,
            val_fraction: float = 0.01, max_docs: int | None = None, tokenizer=None,
            workers: int = 1, force: bool = False, quiet: bool = False,
            trash_cutoff: float | None = TRASH_CUTOFF, dedup: str = "on",
            order: str = "random", tokenizer_model: str | None = None, plugin=None,
            plugin_options: dict | None = None) -> dict:
    """Build the data dir `out` from `sources`; return its manifest.

    The cramming paper's data axes: `trash_cutoff` (tokens per character, None: no trash
    filter; data_prep.filters), `dedup` ("on" | "off"), `order` (a name in
    data_prep.order.ORDERS), `tokenizer_model` (a name in
    data_prep.tokenizer_models.TOKENIZER_MODELS; None: wordpiece, or a reused `tokenizer`'s).
    `plugin`: a plug-in file whose keep_document hook filters the cleaned documents, called
    with `plugin_options` (data_prep.keep_document)."""
    check_settings(sources, vocab_size, seq_len, val_fraction, max_docs, workers)
    check_data_options(trash_cutoff, dedup, order, tokenizer_model)
    if plugin is None and plugin_options:
        raise UserError("--plugin-option given without --plugin FILE")
    keep = None if plugin is None else load_document_filter(plugin, plugin_options)
    options = {"trash_cutoff": None if trash_cutoff is None else float(trash_cutoff),
               "dedup": dedup, "order": order, "tokenizer_model": tokenizer_model,
               "keep": keep}
    out = Path(out)
    for source in sources:  # local files and folders (others are Hub names or "demo")
        if Path(source).exists():
            refuse_output_over_inputs(out, source=source)
    if tokenizer is not None and Path(tokenizer).exists():  # a data dir or its tokenizer.json
        refuse_output_over_inputs(out, tokenizer=tokenizer)
    try:  # fail now, not after the tokenizer is trained
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission
        raise UserError(f"cannot create {out}: {err.filename or out.parent}: "
                        f"{err.strerror or err}") from None
    with dir_lock(out, owner="cram prepare"):  # one writer per data dir
        tidy(out)  # what a killed `prepare` left: a cut-short --force swap, temporary dirs
        if out.exists() and not force:
            raise UserError(f"{out} already exists (use --force to replace it)")
        parsed = [parse_source(spec) for spec in sources]
        with threads(workers):
            return _prepare(parsed, out, vocab_size=vocab_size, seq_len=seq_len,
                            val_fraction=val_fraction, max_docs=max_docs, tokenizer=tokenizer,
                            force=force, quiet=quiet, **options)


def _prepare(parsed, out: Path, *, vocab_size, seq_len, val_fraction, max_docs, tokenizer,
             force, quiet, trash_cutoff, dedup, order, tokenizer_model,
             keep: DocumentFilter | None) -> dict:
    timings: dict[str, float] = {}

    def cleaned(counts: CleanCounts):
        return clean_documents(parsed, counts, max_docs=max_docs, dedup=dedup == "on",
                               keep=None if keep is None else keep.keep)

    started = start = time.perf_counter()
    tok = _tokenizer(cleaned, tokenizer, tokenizer_model, vocab_size, quiet)
    tokenizer_model = model_name(tok)
    timings["train_tokenizer"] = time.perf_counter() - start

    start = time.perf_counter()
    reference = None
    if trash_cutoff is not None:
        # The filter's cutoff holds for a WordPiece of REFERENCE_VOCAB (data_prep.filters).
        trained_at_reference = vocab_size if tokenizer is None else tok.get_vocab_size()
        reference = (tok if trained_at_reference == REFERENCE_VOCAB
                     and tokenizer_model == "wordpiece"
                     else _train(cleaned, "wordpiece", REFERENCE_VOCAB, quiet,
                                 what="the trash filter's reference tokenizer"))
    timings["train_reference"] = time.perf_counter() - start

    with atomic_dir(out, force=force) as tmp:
        counts = CleanCounts()
        start = time.perf_counter()
        result = encode_corpus(cleaned(counts), tok, reference, tmp, seq_len=seq_len,
                               val_fraction=val_fraction, quiet=quiet,
                               trash_cutoff=trash_cutoff)
        timings.update(result.pop("timings"))
        _check_result(result, counts, val_fraction, seq_len, trash_cutoff)
        rows = result["num_sequences"]
        progress_line(f"cram prepare: encoded and packed {counts.documents_kept} documents "
                      f"({result['dropped_trash']} dropped as trash) into {rows['train']} + "
                      f"{rows['val']} rows in {time.perf_counter() - start:.1f} s", quiet=quiet)
        sort = get_order(order)
        if sort.curriculum:
            start = time.perf_counter()
            result["shards"] = sort_train_rows(tmp, result["shards"], sort, tok,
                                               vocab_size=tok.get_vocab_size(), seq_len=seq_len)
            timings["order"] = time.perf_counter() - start
            progress_line(f"cram prepare: sorted {rows['train']} train rows by {order} in "
                          f"{timings['order']:.1f} s", quiet=quiet)
        write_text_atomic(tmp / TOKENIZER, tok.to_str())
        if keep is not None:
            keep.write_copy(tmp)
        manifest = _manifest(
            parsed, tok, result, counts, tmp,
            settings={"vocab_size_requested": vocab_size, "seq_len": seq_len,
                      "val_fraction": val_fraction, "max_docs": max_docs,
                      "tokenizer": "trained" if tokenizer is None else str(tokenizer),
                      "tokenizer_model": tokenizer_model,
                      "min_chars": MIN_CHARS, "max_word_chars": MAX_WORD_CHARS,
                      "max_doc_chars": MAX_DOC_CHARS, "trash_cutoff": trash_cutoff,
                      "trash_reference_vocab": REFERENCE_VOCAB,
                      "normalize": "nfkd-ascii-lowercase-collapse-whitespace",
                      "dedup": DEDUP[dedup], "split": "blake2b-of-document", "order": order,
                      "plugin": None if keep is None else keep.record()},
            curriculum=sort.curriculum,
        )
        timings["total"] = time.perf_counter() - started
        manifest["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        write_json_atomic(tmp / MANIFEST, manifest)
    return manifest


def _tokenizer(cleaned, tokenizer, model: str | None, vocab_size: int, quiet: bool):
    """The tokenizer to encode with: trained (`model`, default wordpiece), or reused from
    `tokenizer`, whose model `model` must then name if given."""
    from data_prep.reader import load_tokenizer

    if tokenizer is None:
        return _train(cleaned, model or "wordpiece", vocab_size, quiet, what="the tokenizer")
    tok = load_tokenizer(tokenizer)
    if tok.get_vocab_size() > MAX_VOCAB:
        raise UserError(f"tokenizer {tokenizer} has {tok.get_vocab_size()} tokens; "
                        f"uint16 shards hold at most {MAX_VOCAB}")
    if model is not None and model != model_name(tok):
        raise UserError(f"--tokenizer-model {model} disagrees with --tokenizer {tokenizer} "
                        f"(a {model_name(tok)} tokenizer); give one of them")
    progress_line(f"cram prepare: reusing the tokenizer of {tokenizer} "
                  f"({tok.get_vocab_size()} tokens)", quiet=quiet)
    return tok


def _train(cleaned, model: str, vocab_size: int, quiet: bool, *, what: str):
    counts = CleanCounts()
    start = time.perf_counter()
    stream = bar(texts(cleaned(counts)), desc=f"training {what}", unit="doc", quiet=quiet)
    tok = tokenizer_model(model).train(stream, vocab_size)
    stream.close()
    _check_not_empty(counts)
    progress_line(f"cram prepare: trained {what} ({tok.get_vocab_size()} tokens) on "
                  f"{counts.documents_kept} documents in {time.perf_counter() - start:.1f} s",
                  quiet=quiet)
    return tok


def _check_not_empty(counts: CleanCounts) -> None:
    if counts.documents_read == 0:
        raise UserError("the sources hold no documents (empty corpus)")
    if counts.documents_kept == 0:
        plugin = (f", {counts.dropped_by_plugin} by the plug-in's keep_document hook"
                  if counts.dropped_by_plugin else "")
        plural = "s" * (counts.dropped_duplicates != 1)
        cut = (f", {counts.documents_cut} over {MAX_DOC_CHARS} characters cut into "
               f"{counts.pieces_from_cuts}" if counts.documents_cut else "")
        raise UserError(f"all {counts.documents_read} documents were filtered out "
                        f"({counts.dropped_too_short} shorter than {MIN_CHARS} characters, "
                        f"{counts.dropped_duplicates} duplicate{plural}{plugin}{cut})")


def _check_result(result: dict, counts: CleanCounts, val_fraction: float, seq_len: int,
                  trash_cutoff: float | None) -> None:
    _check_not_empty(counts)
    if result["dropped_trash"] == counts.documents_kept:
        raise UserError(f"all {counts.documents_kept} cleaned documents were dropped as trash "
                        f"(more than --trash-cutoff {trash_cutoff} tokens per character)")
    if result["num_sequences"]["train"] == 0:
        raise UserError(f"corpus too small: the train split does not fill one row of {seq_len} "
                        "tokens")
    if val_fraction > 0 and result["num_sequences"]["val"] == 0:
        documents = result["documents"]
        raise UserError(f"corpus too small for --val-fraction {val_fraction}: the val split "
                        f"({documents['val']} of {documents['train'] + documents['val']} "
                        f"documents) does not fill one row of {seq_len} tokens (raise it, or "
                        "add text)")


def _manifest(parsed, tok, result, counts, tmp: Path, *, settings: dict,
              curriculum: bool) -> dict:
    import tokenizers

    shards = result["shards"]
    records = [record for source in parsed for record in source.describe()]
    return {
        "format": DATA_FORMAT,
        "seq_len": settings["seq_len"],
        "vocab_size": tok.get_vocab_size(),
        "dtype": "uint16",
        "special_ids": dict(SPECIAL_IDS),
        "num_sequences": result["num_sequences"],
        "num_tokens": sum(result["num_sequences"].values()) * settings["seq_len"],
        "shards": shards,
        "sources": records,
        "pipeline": {
            "settings": settings,
            "counts": {**counts.as_dict(),
                       "dropped_trash": result["dropped_trash"],
                       "documents_packed": sum(result["documents"].values()),
                       "documents_train": result["documents"]["train"],
                       "documents_val": result["documents"]["val"],
                       "tokens_packed": result["tokens_packed"],
                       "tokens_dropped_partial_row": result["tokens_dropped"]},
        },
        "train_order": "curriculum" if curriculum else "shuffle",
        "tokenizer_sha256": sha256_file(tmp / TOKENIZER),
        "data_sha256": data_sha256(shards, settings),
        "software": {"python": platform.python_version(), "tokenizers": tokenizers.__version__},
        "splits": list(SPLITS),
    }
