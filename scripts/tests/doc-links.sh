#!/usr/bin/env bash
# Every relative markdown link in README.md and docs/*.md points at a file
# that exists and, with a #anchor, at a heading of that file (GitHub's
# slugs: lower case, punctuation dropped, spaces to hyphens, -1, -2 ... for
# repeats). Links to other sites are not followed. Exits non-zero listing
# each broken link as file:line: target (why).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
python3 - README.md docs/*.md <<'PY'
import os, re, sys, unicodedata

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def lines_outside_fences(path):
    fenced = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                yield number, line.rstrip("\n")


def slug(text):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or cat[0] in "LN" or cat == "Mn":
            kept.append(ch)
        elif ch == " ":
            kept.append("-")
    return "".join(kept)


anchors = {}


def anchors_of(path):
    if path not in anchors:
        seen, found = {}, set()
        for _, line in lines_outside_fences(path):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        anchors[path] = found
    return anchors[path]


broken = []
checked = 0
for doc in sys.argv[1:]:
    if not os.path.isfile(doc):
        continue
    for number, line in lines_outside_fences(doc):
        for m in LINK.finditer(CODE.sub("", line)):
            target = m.group(1)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
                continue  # another site, mailto:, ...
            checked += 1
            path, _, anchor = target.partition("#")
            if path:
                full = os.path.normpath(os.path.join(os.path.dirname(doc), path))
            else:
                full = doc
            where = f"{doc}:{number}: {target}"
            if not os.path.exists(full):
                broken.append(f"{where} (no file {full})")
                continue
            if anchor:
                if not full.endswith(".md") or os.path.isdir(full):
                    broken.append(f"{where} (an anchor into {full}, which is not markdown)")
                elif anchor.lower() not in anchors_of(full):
                    broken.append(f"{where} (no heading #{anchor} in {full})")

if broken:
    print(f"{len(broken)} broken link(s):")
    for b in broken:
        print("  " + b)
    sys.exit(1)
print(f"doc links: {checked} relative links in {len(sys.argv) - 1} files, all resolve")
PY
