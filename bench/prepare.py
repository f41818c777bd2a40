"""python bench/prepare.py [--corpus ../shared/data/corpus] [--vocab-size 32768] [--workers 2]

Throughput and memory of `cram prepare`, at 1x and 4x the corpus, printed as JSON:
- end_to_end_mb_s: raw source MB / seconds of the whole `prepare()` call (all passes);
- tokenize_pack_mb_s: raw source MB / seconds spent in batch encoding and packing;
- peak_rss_mb: the child process's peak resident memory (os.wait4 rusage, ru_maxrss);
- *_cpu_s and *_mb_per_cpu_s: the same work in CPU seconds (all threads), which a machine
  shared with other jobs does not distort; the load average is printed beside them.
Each size runs in a fresh subprocess, so peak memory is that run's alone; streaming means the
4x run should peak at about the 1x figure (aim: within 1.25x).

The 4x corpus is built in a temporary folder at bench time (never committed): copy 1 is the
corpus as is; copies 2-4 carry their copy number at the end of every text line, because exact
de-duplication would otherwise drop identical copies before they are tokenized.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "corpus"
COPIES = 4


def make_copies(corpus: Path, dest: Path, copies: int) -> Path:
    for k in range(1, copies + 1):
        for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
            target = dest / f"copy{k}" / path.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            if k == 1:
                shutil.copyfile(path, target)
                continue
            with open(path, "rb") as src, open(target, "wb") as out:
                for line in src:
                    body = line.rstrip(b"\r\n")
                    if body.strip() and not body.startswith((b"<doc", b"</doc>")):
                        body += f" {k}".encode()
                    out.write(body + line[len(line.rstrip(b"\r\n")):])
    return dest


def child(args) -> None:
    """Runs in the subprocess: one prepare() call, its figures as JSON on stdout."""
    from data_prep import prepare

    start = time.perf_counter()
    manifest = prepare([args.source], args.out, vocab_size=args.vocab_size,
                       workers=args.workers, quiet=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "manifest": manifest}))


def measure(source: Path, out: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", "--source", str(source), "--out", str(out),
               "--vocab-size", str(args.vocab_size), "--workers", str(args.workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, "CI": "true"})
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"prepare failed on {source} (exit {proc.returncode})")
    result = json.loads(stdout)
    manifest = result["manifest"]
    raw_mb = sum(s["bytes"] for s in manifest["sources"]) / 1e6
    timings = manifest["timings_s"]
    return {
        "raw_mb": round(raw_mb, 3),
        "seconds": round(result["seconds"], 2),
        "end_to_end_mb_s": round(raw_mb / result["seconds"], 3),
        "tokenize_pack_s": timings["tokenize_pack"],
        "tokenize_pack_mb_s": round(raw_mb / timings["tokenize_pack"], 3),
        "tokenize_pack_cpu_s": timings["tokenize_pack_cpu"],
        "tokenize_pack_mb_per_cpu_s": round(raw_mb / timings["tokenize_pack_cpu"], 3),
        "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "timings_s": timings,
        "train_rows": manifest["num_sequences"]["train"],
        "documents_packed": manifest["pipeline"]["counts"]["documents_packed"],
        "data_sha256": manifest["data_sha256"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not args.corpus.is_dir():
        raise SystemExit(f"corpus not found: {args.corpus}")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        tmp = Path(tmp)
        one = measure(args.corpus, tmp / "data-1x", args)
        many = measure(make_copies(args.corpus, tmp / "corpus-4x", COPIES),
                       tmp / "data-4x", args)
    print(json.dumps({
        "bench": "prepare",
        "settings": {"vocab_size": args.vocab_size, "workers": args.workers,
                     "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_before_after": [load_before, [round(x, 2) for x in os.getloadavg()]],
        "corpus_1x": one,
        "corpus_4x": many,
        "peak_rss_ratio_4x_over_1x": round(many["peak_rss_mb"] / one["peak_rss_mb"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
