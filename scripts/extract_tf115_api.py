#!/usr/bin/env python
"""Extracts the public `tf.compat.v1` API of TensorFlow 1.15 from its wheel.

TensorFlow 1.15 (what Ascend's CANN images ship) cannot be installed on a
current Python, but its wheel can be downloaded and read. Its generated files
`tensorflow_core/_api/v1/compat/v1/**/__init__.py` import every public symbol;
this script lists them, one dotted path per line relative to `tf` (for
`import tensorflow.compat.v1 as tf`):

    data                          a module
    data.Dataset                  a symbol in it
    data.Dataset.from_tensor_slices   a member of a class defined in Python

Members are listed for classes whose Python source is in the wheel (their
bases are followed within the same file); classes from C extensions or
protobufs are listed without members, and the checker accepts any attribute on
them. The output is the test data of tests/test_compat.py.

    pip download --no-deps --only-binary=:all: --python-version 3.7 \\
        --implementation cp --abi cp37m --platform manylinux2010_x86_64 \\
        -d /tmp/tf115 tensorflow==1.15.5
    python scripts/extract_tf115_api.py /tmp/tf115/tensorflow-1.15.5-*.whl \\
        tests/data/tf115_compat_v1_api.txt
"""

import argparse
import ast
import os
import sys
import zipfile

API_ROOT = "tensorflow_core/_api/v1/compat/v1/"
V1_PACKAGE = "tensorflow._api.v1.compat.v1"


def _source_path(module):
    """'tensorflow.python.ops.nn' -> 'tensorflow_core/python/ops/nn.py'."""
    parts = module.split(".")
    if parts[0] != "tensorflow":
        return None
    return "/".join(["tensorflow_core"] + parts[1:]) + ".py"


class _SourceIndex(object):
    """Class members of the Python modules in the wheel, parsed on demand."""

    def __init__(self, wheel):
        self._wheel = wheel
        self._names = set(wheel.namelist())
        self._modules = {}

    def _module(self, path):
        if path not in self._modules:
            tree = None
            if path in self._names:
                try:
                    tree = ast.parse(self._wheel.read(path))
                except SyntaxError:
                    tree = None
            self._modules[path] = tree
        return self._modules[path]

    def class_members(self, module, name, _seen=None):
        """Public members of class `name` in `module`, or None if unknown."""
        path = _source_path(module)
        tree = self._module(path) if path else None
        if tree is None:
            return None
        seen = _seen if _seen is not None else set()
        if (path, name) in seen:
            return set()
        seen.add((path, name))
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        aliases = {}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
                    and node.col_offset == 0):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        aliases[target.id] = node.value.id
        while name not in classes and name in aliases:
            name = aliases[name]
        if name not in classes:
            return None
        members = set()
        for node in classes[name].body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                members.add(node.name)
            elif isinstance(node, ast.Assign):
                members.update(t.id for t in node.targets if isinstance(t, ast.Name))
        for base in classes[name].bases:
            if isinstance(base, ast.Name) and base.id in classes:
                inherited = self.class_members(module, base.id, seen)
                members.update(inherited or ())
        return {m for m in members if not m.startswith("_")}


def extract(wheel_path):
    """Returns the sorted list of dotted public paths under tf.compat.v1."""
    wheel = zipfile.ZipFile(wheel_path)
    sources = _SourceIndex(wheel)
    paths = set()
    inits = [n for n in wheel.namelist()
             if n.startswith(API_ROOT) and n.endswith("/__init__.py")]
    if not inits:
        raise SystemExit("%s holds no %s**/__init__.py: is it TensorFlow 1.15?"
                         % (wheel_path, API_ROOT))
    for init in inits:
        prefix = init[len(API_ROOT):-len("__init__.py")].strip("/").replace("/", ".")
        if prefix:
            paths.add(prefix)
        tree = ast.parse(wheel.read(init))
        for node in tree.body:
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            for alias in node.names:
                public = alias.asname or alias.name
                if public.startswith("_"):
                    continue
                path = prefix + "." + public if prefix else public
                paths.add(path)
                if node.module.startswith(V1_PACKAGE):
                    continue  # a submodule, listed from its own __init__.py
                members = sources.class_members(node.module, alias.name)
                for member in members or ():
                    paths.add(path + "." + member)
    return sorted(paths)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", help="path to tensorflow-1.15.*.whl")
    parser.add_argument("output", help="text file to write, one path per line")
    args = parser.parse_args(argv)
    paths = extract(args.wheel)
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
        f.write("# tf.compat.v1 public API of %s (scripts/extract_tf115_api.py)\n"
                % os.path.basename(args.wheel))
        f.write("\n".join(paths) + "\n")
    os.replace(tmp, args.output)
    print("%d paths written to %s" % (len(paths), args.output))


if __name__ == "__main__":
    sys.exit(main())
