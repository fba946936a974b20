#!/usr/bin/env python3
"""The broker's layers, and the check that its includes only go down them.

    scripts/check-layers.py [ROOT]     exit 0, or 1 listing every include that breaks a rule

The table below is the one place the layers are written down (docs/architecture.md explains
them). A file may include headers of its own folder, of any folder below its own, and of
protocol/; nothing else of the broker. Top-level files of broker/ (main.c, config, reload:
the program that puts the layers together) may include anything. client/ is never included
by the broker, and the broker never by protocol/ or client/.
"""
import os
import re
import sys

# Lowest first. Folders on one line are side by side: neither may include the other.
LAYERS = [
    ("util",),           # logging, intrusive lists: no broker state
    ("mem",),            # the budget, slabs, reservoir, output buffers, segments
    ("core",),           # the broker registry, queues, deliveries, dedup, latency
    ("store", "auth", "cluster"),  # SQLite journal and recovery; users, password checks,
                                   # throttle; Raft groups and their transport
    ("req",),            # requests: dispatch, handlers, replies, waiters, subscriptions
    ("net",),            # sockets, connections, TLS, HTTP, guards, metrics
]

# Includes that break a rule and are still to be removed (each with its reason); the check
# fails on any other, and on an exception that is no longer needed.
EXCEPTIONS = {
}

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
rank = {f: i for i, group in enumerate(LAYERS) for f in group}


def product_files(top):
    for d, _, names in os.walk(os.path.join(ROOT, top)):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(d, n), ROOT)


def check():
    broken = []
    used = set()
    for path in product_files("broker"):
        parts = path.split(os.sep)
        layer = parts[1] if len(parts) > 2 else None  # None: broker/ itself, the top
        if layer is not None and layer not in rank:
            broken.append(f"{path}: folder broker/{layer}/ is not in the layer table "
                          "(scripts/check-layers.py)")
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            includes = INCLUDE.findall(f.read())
        for inc in includes:
            if "/" not in inc and os.path.exists(os.path.join(ROOT, "broker", inc)):
                if layer is not None and (path, inc) not in EXCEPTIONS:
                    broken.append(f'{path}: includes "{inc}" of the top of broker/ (the '
                                  "program that puts the layers together), which no layer "
                                  "may include")
                used.add((path, inc))
                continue
            if "/" not in inc:
                if inc == "slabmq.h" or inc.endswith("-internal.h"):
                    if (path, inc) in EXCEPTIONS:
                        used.add((path, inc))
                        continue
                    broken.append(f'{path}: includes "{inc}" of client/: the broker never '
                                  "reaches into the client library")
                continue  # protocol/ headers: allowed everywhere
            target = inc.split("/")[0]
            if target not in rank:
                broken.append(f'{path}: includes "{inc}", a folder not in the layer table')
                continue
            if layer is None or target == layer or rank[target] < rank[layer]:
                continue
            if (path, inc) in EXCEPTIONS:
                used.add((path, inc))
                continue
            how = "the same level as" if rank[target] == rank[layer] else "above"
            broken.append(f'{path}: includes "{inc}", but {target}/ is {how} {layer}/: '
                          f"{layer}/ may include only {below(layer)}")
    for top in ("protocol", "client"):
        for path in product_files(top):
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                for inc in INCLUDE.findall(f.read()):
                    if inc.split("/")[0] in rank:
                        broken.append(f'{path}: includes "{inc}": {top}/ never includes the '
                                      "broker")
    for key, why in EXCEPTIONS.items():
        if key not in used:
            broken.append(f'{key[0]}: the exception for "{key[1]}" ({why}) is no longer '
                          "needed: remove it from scripts/check-layers.py")
    return broken


def below(layer):
    lower = [f + "/" for f in rank if rank[f] < rank[layer]]
    return "its own folder, " + (", ".join(lower) if lower else "nothing else") + " and protocol/"


def main():
    broken = check()
    for line in broken:
        print(line)
    if broken:
        print(f"check-layers: {len(broken)} include(s) against the layers "
              "(docs/architecture.md, Layers)")
        return 1
    print("check-layers: every include goes down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
