#!/usr/bin/env python3
"""Validate questions.json against the files in corpus/.

Checks, byte-exact on the UTF-8 encoding:
  * questions.json is a JSON array of objects with the fields
    id, lang ("ko" or "en"), question, file, evidence; ids are unique;
  * every referenced file exists in corpus/;
  * every evidence string is 8-60 characters, has no line break, occurs
    exactly once in its file and exactly once in the whole corpus.

Exits 0 when everything passes, 1 otherwise. Python 3 standard library only.
Usage: python3 check.py [path/to/questions.json]
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FIELDS = {"id", "lang", "question", "file", "evidence"}


def count(hay: bytes, needle: bytes) -> int:
    """Count occurrences, overlapping ones included."""
    n, start = 0, 0
    while True:
        i = hay.find(needle, start)
        if i < 0:
            return n
        n += 1
        start = i + 1


def main() -> int:
    qpath = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "questions.json"
    errors = []
    docs = {}
    for p in sorted(CORPUS.iterdir()):
        if p.is_file():
            data = p.read_bytes()
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as e:
                errors.append(f"{p.name}: not valid UTF-8 ({e})")
            docs[p.name] = data
    if not docs:
        errors.append(f"no files in {CORPUS}")

    try:
        items = json.loads(qpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"FAIL: cannot read {qpath}: {e}")
        return 1
    if not isinstance(items, list):
        print("FAIL: questions.json is not a JSON array")
        return 1

    seen = set()
    per_lang = {}
    for k, q in enumerate(items):
        where = f"#{k} ({q.get('id') if isinstance(q, dict) else '?'})"
        if not isinstance(q, dict) or set(q) != FIELDS:
            errors.append(f"{where}: fields must be exactly {sorted(FIELDS)}")
            continue
        if not all(isinstance(q[f], str) and q[f] for f in FIELDS):
            errors.append(f"{where}: every field must be a non-empty string")
            continue
        if q["id"] in seen:
            errors.append(f"{where}: duplicate id")
        seen.add(q["id"])
        if q["lang"] not in ("ko", "en"):
            errors.append(f"{where}: lang must be 'ko' or 'en'")
        per_lang[q["lang"]] = per_lang.get(q["lang"], 0) + 1
        ev = q["evidence"]
        if not 8 <= len(ev) <= 60:
            errors.append(f"{where}: evidence has {len(ev)} characters (want 8-60)")
        if "\n" in ev or "\r" in ev:
            errors.append(f"{where}: evidence contains a line break")
        if q["file"] not in docs:
            errors.append(f"{where}: file {q['file']!r} not in corpus/")
            continue
        needle = ev.encode("utf-8")
        in_file = count(docs[q["file"]], needle)
        total = sum(count(d, needle) for d in docs.values())
        if in_file != 1:
            errors.append(f"{where}: evidence occurs {in_file} times in {q['file']}: {ev!r}")
        elif total != 1:
            others = [n for n, d in docs.items() if n != q["file"] and needle in d]
            errors.append(f"{where}: evidence occurs {total} times in the corpus "
                          f"(also in {', '.join(others)}): {ev!r}")

    size = sum(len(d) for d in docs.values())
    langs = ", ".join(f"{k}={v}" for k, v in sorted(per_lang.items()))
    print(f"corpus: {len(docs)} files, {size} bytes; questions: {len(items)} ({langs})")
    for e in errors:
        print("FAIL:", e)
    if errors:
        print(f"{len(errors)} problem(s) found")
        return 1
    print("OK: every evidence string occurs exactly once in its file and in the corpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
