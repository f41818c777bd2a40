"""cram prepare --source demo --out data/demo

Clean, de-duplicate, tokenize and pack corpora into a data dir (contract `cram-data/1`), or
check one: `cram prepare --verify DATA`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", metavar="SRC",
                        help="demo | a .txt/.jsonl/.json/.parquet/<doc> file or folder | "
                             "hf:NAME[:CONFIG][:SPLIT] (repeatable)")
    parser.add_argument("--out", metavar="DATA", help="data dir to create")
    parser.add_argument("--vocab-size", type=int, default=32768,
                        help="WordPiece vocabulary size (default 32768, cramming recipe)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per row (default 128)")
    parser.add_argument("--val-fraction", type=float, default=0.01,
                        help="fraction of documents held out for validation (default 0.01)")
    parser.add_argument("--max-docs", type=int, default=None, metavar="N",
                        help="read at most N documents from the sources")
    parser.add_argument("--tokenizer", metavar="DATA_OR_JSON",
                        help="reuse the tokenizer of a data dir or a tokenizer.json "
                             "(its vocabulary replaces --vocab-size)")
    parser.add_argument("--workers", type=int, default=1,
                        help="tokenizer threads (default 1; results do not depend on it)")
    parser.add_argument("--force", action="store_true", help="replace an existing DATA")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--verify", metavar="DATA",
                        help="check an existing data dir (sizes and sha256) instead")


def run(args: argparse.Namespace) -> int:
    from data_prep import UserError

    if args.verify:
        from data_prep.reader import open_data_dir

        data = open_data_dir(args.verify, verify_hashes=True)
        m = data.manifest
        print(f"OK {data.path}: {m['format']}, {len(m['shards'])} shards, "
              f"train {data.num_rows('train')} rows, val {data.num_rows('val')} rows of "
              f"{data.seq_len}, vocab {data.vocab_size}, data_sha256 {data.data_sha256}")
        return 0
    if not args.source or not args.out:
        raise UserError("--source and --out are required (or --verify DATA)")
    from data_prep.prepare import prepare

    manifest = prepare(args.source, args.out, vocab_size=args.vocab_size, seq_len=args.seq_len,
                       val_fraction=args.val_fraction, max_docs=args.max_docs,
                       tokenizer=args.tokenizer, workers=args.workers, force=args.force,
                       quiet=args.quiet)
    counts = manifest["pipeline"]["counts"]
    print(f"wrote {args.out}: train {manifest['num_sequences']['train']} rows, val "
          f"{manifest['num_sequences']['val']} rows of {manifest['seq_len']}, vocab "
          f"{manifest['vocab_size']}, {counts['documents_kept']} of "
          f"{counts['documents_read']} documents kept, {manifest['timings_s']['total']:.1f} s, "
          f"data_sha256 {manifest['data_sha256']}")
    return 0
