"""cram prepare --source demo --out data/demo

Clean, de-duplicate, tokenize and pack corpora into a data dir (contract `cram-data/1`), or
check one: `cram prepare --verify DATA`.
"""

from __future__ import annotations

import argparse

from crambench import options
from crambench.progress import QUIET_HELP
from data_prep.filters import TRASH_CUTOFF
from data_prep.manifest import MAX_VOCAB, MIN_SEQ_LEN, SPECIAL_TOKENS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", metavar="SRC",
                        help="demo | a .txt/.jsonl/.json/.parquet/<doc> file or folder | "
                             "hf:NAME[:CONFIG][:SPLIT] (required, repeatable)")
    parser.add_argument("--out", metavar="DATA",
                        help="data dir to create (required with --source)")
    parser.add_argument("--vocab-size", type=options.whole(len(SPECIAL_TOKENS) + 1, MAX_VOCAB),
                        default=32768,
                        help="tokenizer vocabulary size (default 32768, cramming recipe)")
    parser.add_argument("--seq-len", type=options.whole(MIN_SEQ_LEN), default=128,
                        help="tokens per row (default 128)")
    parser.add_argument("--val-fraction", type=options.number(0, 1, open_high=True), default=0.01,
                        help="fraction of documents held out for validation (default 0.01)")
    parser.add_argument("--max-docs", type=options.whole(1), default=None, metavar="N",
                        help="read at most N documents from the sources")
    parser.add_argument("--tokenizer", metavar="DATA_OR_JSON",
                        help="reuse the tokenizer of a data dir or a tokenizer.json "
                             "(its vocabulary replaces --vocab-size)")
    parser.add_argument("--tokenizer-model", metavar="MODEL", default=None,
                        help="wordpiece (default), bpe or unigram: the subword model to train "
                             "(with --tokenizer, the reused one's)")
    parser.add_argument("--trash-cutoff", type=cutoff, default=TRASH_CUTOFF, metavar="X",
                        help=f"drop documents of X or more tokens per character (default "
                             f"{TRASH_CUTOFF}, cramming recipe), or off")
    parser.add_argument("--dedup", choices=("on", "off"), default="on",
                        help="drop exact duplicate documents (default on)")
    parser.add_argument("--order", metavar="ORDER", default="random",
                        help="train rows: random (default; shuffled by pretraining from its "
                             "seed), or a curriculum pretraining keeps: prevalence (rarest "
                             "tokens first), sentence-length (most sentences first)")
    parser.add_argument("--plugin", metavar="FILE",
                        help="a plug-in file whose keep_document(text, options) hook keeps "
                             "(True) or drops (False) each cleaned document; copied into the "
                             "data dir and hashed into data_sha256")
    parser.add_argument("--plugin-option", action="append", type=plugin_option,
                        metavar="KEY=VALUE",
                        help="an entry of the hook's options, VALUE read as YAML (0.7 is a "
                             "number); repeatable, needs --plugin")
    parser.add_argument("--workers", type=options.whole(1), default=1,
                        help="tokenizer threads (default 1; results do not depend on it)")
    parser.add_argument("--force", action="store_true", help="replace an existing DATA")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("--verify", metavar="DATA",
                        help="check an existing data dir instead: every manifest claim against "
                             "the tokenizer and shards (sizes, sha256, token ids)")


def cutoff(text: str) -> float | None:
    """--trash-cutoff: a number of tokens per character above 0, or `off` (None)."""
    if text.strip().lower() == "off":
        return None
    try:
        return options.number(0, open_low=True)(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} (or off)") from None


def plugin_option(text: str):
    """--plugin-option KEY=VALUE: (KEY, VALUE) (data_prep.keep_document.option_pair)."""
    from crambench.errors import UserError
    from data_prep.keep_document import option_pair

    try:
        return option_pair(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE") from err


def run(args: argparse.Namespace) -> int:
    from crambench.errors import UserError

    if args.verify:
        from data_prep.verify import verify_data_dir

        found = verify_data_dir(args.verify)
        data = found["data"]
        print(f"OK {data.path}: {data.manifest['format']}, {len(data.manifest['shards'])} "
              f"shards, train {data.num_rows('train')} rows, val {data.num_rows('val')} rows "
              f"of {data.seq_len}, vocab {data.vocab_size} (tokenizer agrees; largest id in the "
              f"shards {found['max_token_id']}){plugin_note(data.manifest)}, data_sha256 "
              f"{data.data_sha256}")
        return 0
    if not args.source or not args.out:
        raise UserError("--source and --out are required (or --verify DATA)")
    from data_prep.keep_document import plugin_options
    from data_prep.prepare import prepare

    manifest = prepare(args.source, args.out, vocab_size=args.vocab_size, seq_len=args.seq_len,
                       val_fraction=args.val_fraction, max_docs=args.max_docs,
                       tokenizer=args.tokenizer, workers=args.workers, force=args.force,
                       quiet=args.quiet, trash_cutoff=args.trash_cutoff, dedup=args.dedup,
                       order=args.order, tokenizer_model=args.tokenizer_model,
                       plugin=args.plugin, plugin_options=plugin_options(args.plugin_option))
    plugin = plugin_note(manifest, args.plugin)
    documents = documents_line(manifest["pipeline"]["counts"], plugin=bool(plugin))
    print(f"wrote {args.out}: train {manifest['num_sequences']['train']} rows, val "
          f"{manifest['num_sequences']['val']} rows of {manifest['seq_len']}, vocab "
          f"{manifest['vocab_size']}, {documents}{plugin}, "
          f"{manifest['timings_s']['total']:.1f} s, "
          f"data_sha256 {manifest['data_sha256']}")
    return 0


def plugin_note(manifest: dict, path=None) -> str:
    """", with the plug-in FILE (options ...)" for a dir prepared with a plug-in, else ""."""
    record = manifest["pipeline"].get("settings", {}).get("plugin")
    if not isinstance(record, dict):
        return ""
    options = record.get("options") or {}
    shown = f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else ""
    return (f", with the plug-in {path or record.get('file')}{shown}, sha256 "
            f"{str(record.get('sha256'))[:16]}...")


def documents_line(counts: dict, plugin: bool = False) -> str:
    """Where the documents went: e.g. "1585 documents packed (5541 read; dropped 3832 too
    short, 6 duplicates, 118 trash)", and ", 12 by the plug-in" when one filtered them."""
    from data_prep.normalize import MAX_WORD_CHARS
    from data_prep.segment import MAX_DOC_CHARS

    read = f"{counts['documents_read']} read"
    if counts["documents_cut"]:
        read += (f", {counts['documents_cut']} over {MAX_DOC_CHARS} characters cut into "
                 f"{counts['pieces_from_cuts']}")
    if counts["words_dropped_too_long"]:
        words = counts["words_dropped_too_long"]
        read += (f", {words} word{'s' if words > 1 else ''} over {MAX_WORD_CHARS} characters "
                 "removed")
    dropped = (f"dropped {counts['dropped_too_short']} too short, "
               f"{counts['dropped_duplicates']} duplicates, {counts['dropped_trash']} trash")
    if plugin:
        dropped += f", {counts.get('dropped_by_plugin', 0)} by the plug-in"
    return f"{counts['documents_packed']} documents packed ({read}; {dropped})"
