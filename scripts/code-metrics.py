#!/usr/bin/env python3
"""Size and shape of the broker's code, for the layers work (issue 16) and its closing note.

    scripts/code-metrics.py [ROOT]

Prints: files per folder under broker/; module include cycles (a module is NAME.c with
NAME.h; an edge A -> B when A.c or A.h includes B.h); the largest structs (fields, and the
product files that use them); function sizes (median, p90, max, in lines from the opening
to the closing brace). Reads files as text; changes nothing.
"""
import os
import re
import statistics
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
PRODUCT = ("broker", "protocol", "client", "tools")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(top):
    for d, _, names in os.walk(os.path.join(ROOT, top)):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.join(d, n)


def rel(p):
    return os.path.relpath(p, ROOT)


def module_cycles(files):
    """Strongly connected components of more than one module (Tarjan)."""
    mod = lambda p: os.path.splitext(os.path.basename(p))[0]
    names = {mod(p) for p in files}
    edges = {m: set() for m in names}
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            for inc in INCLUDE.findall(f.read()):
                t = os.path.splitext(os.path.basename(inc))[0]
                if t in names and t != mod(p):
                    edges[mod(p)].add(t)
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(names):
        if v not in index:
            visit(v)
    return out


STRUCT = re.compile(r"^struct (\w+) \{\n(.*?)^\};", re.M | re.S)


def structs(files):
    """(fields, name, defining file) for every struct defined at file scope."""
    found = []
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in STRUCT.finditer(text):
            body = re.sub(r"/\*.*?\*/", "", m.group(2), flags=re.S)
            depth, fields = 0, 0
            for line in body.split("\n"):
                s = line.strip()
                if not s:
                    continue
                if depth == 0 and s.endswith(";"):
                    fields += s.count(";")
                depth += s.count("{") - s.count("}")
            found.append((fields, m.group(1), rel(p)))
    return found


FUNC_START = re.compile(r"^[A-Za-z_][\w \*]*\n?^(\w+)\(", re.M)


def function_sizes(files):
    sizes = []
    for p in files:
        if not p.endswith(".c"):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        i = 0
        while i < len(lines):
            # a definition: "name(" at column 0, its body's "{" at column 0 later
            if re.match(r"^[a-z_]\w*\(", lines[i]):
                j = i
                while j < len(lines) and lines[j] != "{" and not lines[j].endswith(";"):
                    j += 1
                if j < len(lines) and lines[j] == "{":
                    k = j + 1
                    while k < len(lines) and lines[k] != "}":
                        k += 1
                    sizes.append(k - j + 1)
                    i = k
            i += 1
    return sizes


def main():
    broker = list(sources("broker"))
    product = [p for t in PRODUCT for p in sources(t)]
    print("files per folder (broker/):")
    per = {}
    for p in broker:
        per.setdefault(os.path.dirname(rel(p)), []).append(p)
    for d in sorted(per):
        c = sum(1 for p in per[d] if p.endswith(".c"))
        h = len(per[d]) - c
        print(f"  {d}: {c} .c, {h} .h")
    cyc = module_cycles(broker)
    print(f"include cycles among broker modules: {len(cyc)}")
    for c in cyc:
        print(f"  {len(c)} modules: {' '.join(c)}")
    print("largest structs (fields; product files that name them):")
    for fields, name, where in sorted(structs(broker), reverse=True)[:5]:
        users = 0
        pat = re.compile(r"\bstruct " + name + r"\b")
        for p in product:
            with open(p, encoding="utf-8", errors="replace") as f:
                if pat.search(f.read()):
                    users += 1
        print(f"  struct {name} ({where}): {fields} fields, named in {users} files")
    sizes = sorted(function_sizes(broker))
    if sizes:
        p90 = sizes[min(len(sizes) - 1, int(len(sizes) * 0.9))]
        print(f"broker functions: {len(sizes)}, lines median {statistics.median(sizes):g}, "
              f"p90 {p90}, max {sizes[-1]}")


if __name__ == "__main__":
    main()
