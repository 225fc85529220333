#!/usr/bin/env python
"""Checks that the code runs on both TensorFlows this project supports.

TF 1.15 with Python 3.7 (Ascend's CANN images) and current TF 2.x:
  * every file parses as Python 3.7 (`ast.parse(..., feature_version=(3, 7))`);
  * TensorFlow is imported only as `import tensorflow.compat.v1 as tf`;
  * every `tf.<path>` attribute chain exists in TF 1.15's tf.compat.v1 API
    (tests/data/tf115_compat_v1_api.txt, made by extract_tf115_api.py);
  * nothing from tf.contrib, tf.layers, tf.keras or tf.estimator, which
    TF 2.x with Keras 3 no longer has.

    python scripts/check_compat.py            # the whole project
    python scripts/check_compat.py FILE...    # some files
Prints one line per problem and exits 1 if there are any.
"""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_FILE = os.path.join(ROOT, "tests", "data", "tf115_compat_v1_api.txt")
BANNED = ("contrib", "layers", "keras", "estimator")
TF_MODULE = "tensorflow.compat.v1"


def load_api(path=API_FILE):
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def python_files(root=ROOT):
    skip = {".git", "__pycache__", ".pytest_cache", "node_modules"}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def syntax_problems(source, filename):
    try:
        if sys.version_info >= (3, 8):
            ast.parse(source, filename, feature_version=(3, 7))  # novm: guarded
        else:  # Python 3.7 parses its own grammar
            ast.parse(source, filename)
    except SyntaxError as e:
        return ["%s:%s: not Python 3.7 syntax: %s" % (filename, e.lineno, e.msg)]
    return []


def _chain(node):
    """'a.b.c' for Attribute(Attribute(Name a, b), c), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return list(reversed(parts))
    return None


def tf_usages(tree, filename):
    """(tf paths used as (path, line) pairs, import problems)."""
    aliases, problems = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == TF_MODULE and alias.asname:
                    aliases.add(alias.asname)
                elif alias.name == "tensorflow" or alias.name.startswith("tensorflow."):
                    problems.append("%s:%d: import TensorFlow as `import %s as tf`, not "
                                    "`import %s`" % (filename, node.lineno, TF_MODULE,
                                                     alias.name))
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "tensorflow" or node.module.startswith("tensorflow.")):
            problems.append("%s:%d: import TensorFlow as `import %s as tf`, not `from %s "
                            "import ...`" % (filename, node.lineno, TF_MODULE, node.module))
    usages = []
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts = _chain(node)
            if parts and parts[0] in aliases:
                usages.append((".".join(parts[1:]), node.lineno))
                value = node.value
                while isinstance(value, ast.Attribute):  # count each chain once
                    inner.add(id(value))
                    value = value.value
    return usages, problems


def api_problem(path, api):
    """Why `tf.<path>` is not available on TF 1.15 / TF 2.x, or None."""
    parts = path.split(".")
    if parts[0] in BANNED:
        return "tf.%s: tf.%s is gone in TF 2.x (Keras 3); write it with tf.nn / " \
               "tf.get_variable in ops.py" % (path, parts[0])
    for n in range(1, len(parts) + 1):
        prefix = ".".join(parts[:n])
        if prefix in api:
            continue
        parent = ".".join(parts[:n - 1])
        has_members = any(p.startswith(parent + ".") for p in api) if parent else True
        if n > 1 and parent in api and not has_members:
            return None  # a class or function whose members are not listed
        return "tf.%s: not in TF 1.15's tf.compat.v1 (no tf.%s)" % (path, prefix)
    return None


def check_source(source, filename, api):
    problems = syntax_problems(source, filename)
    if problems:
        return problems
    tree = ast.parse(source, filename)
    usages, problems = tf_usages(tree, filename)
    for path, line in usages:
        why = api_problem(path, api)
        if why:
            problems.append("%s:%d: %s" % (filename, line, why))
    return problems


def check_files(paths, api=None):
    api = api if api is not None else load_api()
    problems = []
    for path in paths:
        with open(path) as f:
            problems.extend(check_source(f.read(), os.path.relpath(path, ROOT), api))
    return problems


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    problems = check_files(args or list(python_files()))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
