#!/usr/bin/env python3
"""The rules of the house that a compiler does not check (docs/architecture.md, "Rules"):
1. The pure engines know no I/O: their files include, directly or through other project
   headers, no <uv.h>, no "conn.h", "loop.h" or "server.h".
2. Internal declarations sit beside their own .c: a pw__ function declared in src/X.h is
   defined in src/X.c (static inline ones live in the header itself).
3. Code comments name no issue numbers (git history has them).
Checked to fail with `#include "loop.h"` added to src/wsparse.c, with pw__ws_read declared
in conn.h again, and with "(issue 7)" put back into a comment."""
import glob
import os
import re
import sys

src = sys.argv[1]
PURE = ["wsparse", "httphead", "handshake", "frame", "utf8", "deflate", "tls", "util"]
FORBIDDEN = {"uv.h", "conn.h", "loop.h", "server.h"}
problems = []


def includes(path):
    return re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', open(path).read(), re.M)


def reach(path, seen):
    for inc in includes(path):
        local = os.path.join(src, inc)
        if inc in seen:
            continue
        seen.add(inc)
        if os.path.exists(local):
            reach(local, seen)
    return seen


for name in PURE:
    for ext in (".c", ".h"):
        path = os.path.join(src, name + ext)
        if not os.path.exists(path):
            problems.append(f"pure file {path} is missing (update PURE here and the map)")
            continue
        bad = sorted(reach(path, set()) & FORBIDDEN)
        if bad:
            problems.append(f"{path} (pure) reaches {', '.join(bad)}")

defined = {}
for c in glob.glob(os.path.join(src, "*.c")):
    for m in re.finditer(r"^[a-z_][\w \*]*?[\s\*](pw__\w+)\([^;{]*\)\s*\{", open(c).read(), re.M):
        defined[m.group(1)] = os.path.basename(c)[:-2]
for h in glob.glob(os.path.join(src, "*.h")):
    text = re.sub(r"static inline[^{;]*\{.*?\n\}", "", open(h).read(), flags=re.S)
    base = os.path.basename(h)[:-2]
    for m in re.finditer(r"^[a-z_][^;(\n]*?\b(pw__\w+)\(", text, re.M):
        name = m.group(1)
        if name in defined and defined[name] != base:
            problems.append(f"{name} is declared in {base}.h but defined in {defined[name]}.c")

roots = [src, os.path.join(src, "..", "include"), os.path.join(src, "..", "daemon")]
for root in roots:
    for path in glob.glob(os.path.join(root, "*.[ch]")):
        for n, line in enumerate(open(path), 1):
            if re.search(r"\bissues? \d+\b", line, re.I):
                problems.append(f"{path}:{n}: an issue number in a comment: {line.strip()}")

for p in problems:
    print("FAILED:", p)
print(f"{len(PURE)} pure engines, {len(defined)} internal functions checked: "
      f"{len(problems)} problem(s)")
sys.exit(1 if problems else 0)
