#!/usr/bin/env python3
"""The library's layers, checked (TAP output).

lib/meson.build gives each layer the include paths of the layers below it,
so a layer cannot name a header from above by its name. What the include
paths cannot stop is checked here:
  1. the layers and what each may see ('below' in lib/meson.build) form an
     order: each sees only layers listed before it, so there is no cycle;
  2. no source or header anywhere reaches around the include paths with a
     relative path (#include "../...") or through lib/ ("lib/...");
  3. the public headers (include/devmig/) include only public headers;
  4. what is built outside lib/ and tests/ (the CLI, the device variants,
     the out-of-tree example) names no header private to a layer.
Usage: layering.py SOURCE_DIR
"""
import os
import re
import sys

top = sys.argv[1]
failures = []
n = 0


def check(ok, what, detail=()):
    global n
    n += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (n, what))
    for d in detail:
        print("# " + d)


def sources(*dirs):
    for d in dirs:
        for root, subdirs, files in os.walk(os.path.join(top, d)):
            subdirs[:] = [s for s in subdirs if s not in ("corpus",)]
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.join(root, f)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m:
                yield i, m.group(1)


print("1..4")

# 1. the layer order
with open(os.path.join(top, "lib", "meson.build")) as f:
    meson = f.read()
layers = re.findall(r"'(\w+)'\s*:\s*\{[^{}]*?'below'\s*:\s*\[([^\]]*)\]", meson, re.S)
order = [name for name, _ in layers]
bad = []
for i, (name, below) in enumerate(layers):
    for b in re.findall(r"'(\w+)'", below):
        if b not in order[:i]:
            bad.append("%s sees %s, which is not below it" % (name, b))
check(len(layers) >= 6 and not bad,
      "layers in order, each seeing only those below (%s)" % " < ".join(order), bad)

# 2. no escape around the include paths
bad = []
for path in sources("lib", "include", "tools", "devices", "tests", "bench", "fuzz", "examples"):
    for line, inc in includes(path):
        if inc.startswith("../") or "/../" in inc or inc.startswith("lib/"):
            bad.append("%s:%d: #include \"%s\"" % (os.path.relpath(path, top), line, inc))
check(not bad, "no #include reaches around the include paths (\"../\", \"lib/\")", bad)

# 3. public headers include only public headers
bad = []
for path in sources("include"):
    for line, inc in includes(path):
        if not inc.startswith("devmig/"):
            bad.append("%s:%d: #include \"%s\"" % (os.path.relpath(path, top), line, inc))
check(not bad, "public headers include only public headers", bad)

# 4. the CLI, devices and the example: public headers and their own
private = {}
for path in sources("lib"):
    if path.endswith(".h"):
        private[os.path.basename(path)] = os.path.relpath(path, top)
bad = []
for d in ("tools", "devices", "examples"):
    for path in sources(d):
        for line, inc in includes(path):
            own = os.path.exists(os.path.join(os.path.dirname(path), inc)) or \
                os.path.exists(os.path.join(top, "devices", inc)) or \
                os.path.exists(os.path.join(top, "tools", inc))
            if not inc.startswith("devmig/") and not own:
                bad.append("%s:%d: #include \"%s\"%s" % (
                    os.path.relpath(path, top), line, inc,
                    " (private: %s)" % private[inc] if inc in private else ""))
check(not bad, "tools/, devices/, examples/ use public headers and their own", bad)
