#!/usr/bin/env python3
"""The header and docs/api.md agree: every public call (PW_API), every pw_options field and every
pw_stats counter of include/pushwire.h is named in docs/api.md, and every `pw_*(` call that
docs/api.md names exists in the header. Checked to fail with a PW_API call added to the header
only, and with a call renamed in the docs only."""
import re
import sys

header = open(sys.argv[1]).read()
docs = open(sys.argv[2]).read()
problems = []

calls = set(re.findall(r"^PW_API [^(]*?\b(pw_[a-z_0-9]+)\(", header, re.M))
for name in sorted(calls):
    if "`" + name not in docs:
        problems.append(f"{name}: declared in the header, not in docs/api.md")
for name in sorted(set(re.findall(r"`(pw_[a-z_0-9]+)\(", docs))):
    if name not in calls:
        problems.append(f"{name}: in docs/api.md, not a PW_API call of the header")


def fields(struct):
    body = re.search(r"typedef struct %s \{(.*?)\n\} %s;" % (struct, struct), header, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    body = re.sub(r"struct \w+ \{.*?\} (\w+);", r"\1;", body, flags=re.S)  # nested blocks
    names = []
    for decl in body.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        if "(*" in decl:
            names.append(re.search(r"\(\*\s*(\w+)\)", decl).group(1))
            continue
        for part in decl.split(","):
            names.append(re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*$", part.strip())[0])
    return names


for struct in ("pw_options", "pw_stats"):
    for name in fields(struct):
        if not re.search(r"`[^`]*\b%s\b" % re.escape(name), docs):
            problems.append(f"{struct}.{name}: in the header, not in docs/api.md")

for p in problems:
    print("FAILED:", p)
print(f"{len(calls)} calls checked, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
