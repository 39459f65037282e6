#!/usr/bin/env python3
"""Turn the hand-written markup in src/*.txt into labeled JSONL (one file per source).

Markup: `[[ENTITY|value]]` marks a labeled span; `\\n` in a line is a newline; lines starting
with `#` are comments. Output lines: {"id", "text", "spans": [{"entity", "start", "end"}]} with
start/end in Unicode scalar values (Python str indices), end exclusive.
Run from anywhere: python3 crates/custos-pii/corpus/build.py
"""
import json, os, re

here = os.path.dirname(os.path.abspath(__file__))
TAG = re.compile(r"\[\[([A-Z_]+)\|(.*?)\]\]", re.S)

for name in sorted(os.listdir(os.path.join(here, "src"))):
    if not name.endswith(".txt"):
        continue
    stem = name[:-4]
    out = []
    with open(os.path.join(here, "src", name), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            line = line.replace("\\n", "\n")
            text, spans, pos = "", [], 0
            for m in TAG.finditer(line):
                text += line[pos:m.start()]
                start = len(text)
                text += m.group(2)
                spans.append({"entity": m.group(1), "start": start, "end": len(text)})
                pos = m.end()
            text += line[pos:]
            out.append({"id": f"{stem}:{lineno}", "text": text, "spans": spans})
    with open(os.path.join(here, f"{stem}.jsonl"), "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{stem}.jsonl: {len(out)} examples")
