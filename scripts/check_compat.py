#!/usr/bin/env python
"""Checks that the code runs on both TensorFlows this project supports.

TF 1.15 with Python 3.7 (Ascend's CANN images) and current TF 2.x:
  * every file parses as Python 3.7 (`ast.parse(..., feature_version=(3, 7))`);
  * TensorFlow is imported only as `import tensorflow.compat.v1 as tf`;
  * every `tf.<path>` attribute chain exists in TF 1.15's tf.compat.v1 API
    (tests/data/tf115_compat_v1_api.txt, made by extract_tf115_api.py);
  * nothing from tf.contrib, tf.layers, tf.keras or tf.estimator, which
    TF 2.x with Keras 3 does not have;
  * every call `tf.<path>(...)` fits TF 1.15's signature of that callable
    (tests/data/tf115_signatures.json, made by extract_tf115_api.py from the
    1.15 wheel's source): each keyword is one of its parameters (unless it
    takes **kwargs) and there are no more positional arguments than it takes
    (unless *args). Classes are checked against their constructor, protocol
    buffer messages (tf.ConfigProto, tf.GPUOptions, tf.RunOptions,
    tf.train.Example, ...) against their fields, raw_ops as keywords only;
  * so are method calls on tf.data Datasets, against TF 1.15's
    tf.data.Dataset (a method it lacks is reported too), where the receiver
    is known to be a Dataset without running the code: a call of
    `tf.data.Dataset.<static method>` or `tf.data.<...>Dataset`, a Dataset
    method's result (`.batch(...).prefetch(...)`), a name that every
    assignment in its function (or module) gives such a value, or a call of
    a function of the same file whose every `return` gives one.

Not covered: method calls on other objects (a Saver, a Session, an optimizer
held in a variable), Datasets passed in as parameters or returned by another
file's functions, callables the signature file lacks (not defined in Python
in the 1.15 wheel, e.g. tf.flags, or made by calls the extractor does not
follow, e.g. namedtuples and enums), calls through `*args` / `**kwargs`
(only the arguments written out are checked), missing required arguments,
argument values and dtypes.

One dtype trap is known: TF 1.15's ResizeNearestNeighbor op does not take
bfloat16 (its OpDef allows int8 ... half, float32, float64; TF 2.x's adds
bfloat16), so tf.image.resize_nearest_neighbor on a bfloat16 tensor fails at
graph build on 1.15 only. ops._resize therefore resizes bfloat16 tensors in
float32 (tests/test_ops.py checks that no such op is built).

    python scripts/check_compat.py            # the whole project
    python scripts/check_compat.py FILE...    # some files
Prints one line per problem and exits 1 if there are any.
"""

import ast
import collections
import functools
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_FILE = os.path.join(ROOT, "tests", "data", "tf115_compat_v1_api.txt")
SIGNATURES_FILE = os.path.join(ROOT, "tests", "data", "tf115_signatures.json")
BANNED = ("contrib", "layers", "keras", "estimator")
TF_MODULE = "tensorflow.compat.v1"
DATASET = "data.Dataset"
# TF 1.15's Dataset methods whose result is not a Dataset.
NOT_DATASET_METHODS = ("make_initializable_iterator", "make_one_shot_iterator", "options",
                       "reduce")
# What a def, lambda or class body runs in a scope of its own.
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)

# A callable's parameters: `names` can be given as keywords, the first
# `positional` of them by position; *args (varargs) and **kwargs (varkw)
# take any others.
Signature = collections.namedtuple("Signature", "names positional varargs varkw")


def load_api(path=API_FILE):
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def parse_parameters(text):
    """The Signature of "a, b, *args, c, **kwargs" (extract_tf115_api.py's
    notation: a Python signature without defaults; "*, a" is keywords only)."""
    params = [p for p in text.split(", ") if p]
    stars = [i for i, p in enumerate(params) if p.startswith("*")]
    return Signature(names=[p for p in params if not p.startswith("*")],
                     positional=stars[0] if stars else len(params),
                     varargs=any(p.startswith("*") and p.strip("*") and not p.startswith("**")
                                 for p in params),
                     varkw=any(p.startswith("**") for p in params))


@functools.lru_cache(maxsize=None)
def load_signatures(path=SIGNATURES_FILE):
    """{api path: Signature} of TF 1.15's callables (read once)."""
    with open(path) as f:
        entries = json.load(f)
    return {p: parse_parameters(text) for p, text in entries.items() if not p.startswith("#")}


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


def tf_imports(tree, filename):
    """(the names TensorFlow is imported as, import problems)."""
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
    return aliases, problems


def _tf_chains(tree, aliases):
    """(path, line) of each whole `tf.<path>` attribute chain."""
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
    return usages


def tf_usages(tree, filename):
    """(tf paths used as (path, line) pairs, import problems)."""
    aliases, problems = tf_imports(tree, filename)
    return _tf_chains(tree, aliases), problems


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


def _scope_nodes(scope):
    """The nodes a module, def, lambda or class body evaluates in its own
    scope: not the bodies nested in it, but their decorators and defaults."""
    stack = list(scope.body) if isinstance(scope.body, list) else [scope.body]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, SCOPES):
            stack.extend(getattr(node, "decorator_list", []))
            if isinstance(node, ast.ClassDef):
                stack.extend(node.bases + node.keywords)
            else:
                stack.extend(node.args.defaults + [d for d in node.args.kw_defaults if d])
        else:
            stack.extend(ast.iter_child_nodes(node))


def _scopes(tree):
    """{scope: the nodes it evaluates} for the module and each def, lambda
    and class in it."""
    scopes, pending = {}, [tree]
    while pending:
        scope = pending.pop()
        scopes[scope] = list(_scope_nodes(scope))
        pending.extend(n for n in scopes[scope] if isinstance(n, SCOPES))
    return scopes


def _assignments(scope, nodes):
    """{name: [values]} of the names a scope (evaluating `nodes`, each before
    its children) binds; a value is None where the binding is not `name =
    value` (a parameter, a loop, an import, `+=`, ...)."""
    values = collections.defaultdict(list)
    plain = set()
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[target.id].append(node.value)
                    plain.add(id(target))
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            if id(node) not in plain:
                values[node.id].append(None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                values[(alias.asname or alias.name).split(".")[0]].append(None)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            values[node.name].append(None)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            values[node.name].append(None)
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = scope.args
        for arg in args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None:
                values[arg.arg].append(None)
    return values


def _makes_dataset(path):
    """Whether calling tf.<path> gives a Dataset: a static method of
    tf.data.Dataset or a tf.data...Dataset class (or *_dataset function)."""
    if path[:2] == DATASET.split(".") and len(path) == 3:
        return path[2] not in NOT_DATASET_METHODS
    return path[0] == "data" and path[-1].lower().endswith("dataset")


class _Datasets(object):
    """Which expressions of one file are tf.data Datasets, as far as can be
    told without running it (see the module doc).

    A name is one if every assignment to it in its scope gives one, which
    may involve the name itself (`d = d.batch(2)`), and a function returns
    one if all its returns do, which may involve other functions: both are
    the largest sets consistent with that, found by dropping what fails.
    """

    def __init__(self, tree, aliases, api):
        self._tf = aliases
        self._api = api
        self.scopes = _scopes(tree)
        self._assignments = {scope: _assignments(scope, nodes)
                             for scope, nodes in self.scopes.items()}
        functions = collections.defaultdict(list)
        self._returns = {}
        for scope, nodes in self.scopes.items():
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[scope.name].append(scope)
                self._returns[scope] = [n.value for n in nodes if isinstance(n, ast.Return)]
        self._functions = set(functions)
        while True:
            kept = {name for name, defs in functions.items()
                    if all(self._returns_dataset(d) for d in defs)}
            if kept == self._functions:
                break
            self._functions = kept

    def _returns_dataset(self, function):
        names = self.names(function)
        returns = self._returns[function]
        return bool(returns) and all(value is not None and self.is_dataset(value, names)
                                     for value in returns)

    def names(self, scope):
        """The names that hold a Dataset throughout `scope`."""
        values = self._assignments[scope]
        names = {name for name, assigned in values.items() if None not in assigned}
        while True:
            kept = {name for name in names
                    if all(self.is_dataset(value, names) for value in values[name])}
            if kept == names:
                return names
            names = kept

    def is_dataset(self, node, names):
        """Whether expression `node` gives a Dataset, `names` holding them."""
        if isinstance(node, ast.Name):
            return node.id in names
        if not isinstance(node, ast.Call):
            return False
        parts = _chain(node.func)
        if parts and parts[0] in self._tf:
            return len(parts) > 2 and _makes_dataset(parts[1:])
        if isinstance(node.func, ast.Name):
            return node.func.id in self._functions
        return (isinstance(node.func, ast.Attribute) and self.has_method(node.func.attr)
                and node.func.attr not in NOT_DATASET_METHODS
                and self.is_dataset(node.func.value, names))

    def has_method(self, name):
        """Whether TF 1.15's tf.data.Dataset has a member `name`."""
        return DATASET + "." + name in self._api


def _bound(signature):
    """A method's signature called on an instance: without `self`."""
    if signature.names[:1] != ["self"]:
        return signature  # a static method
    return signature._replace(names=signature.names[1:], positional=signature.positional - 1)


def argument_problems(call, name, signature):
    """Why TF 1.15 would refuse call `name(...)`'s arguments (each a line)."""
    has = ", ".join(signature.names) or "no parameters"
    problems = []
    if not signature.varkw:
        for keyword in call.keywords:
            if keyword.arg is not None and keyword.arg not in signature.names:
                problems.append("%s(...) keyword '%s' is not in TF 1.15's signature (has: %s)"
                                % (name, keyword.arg, has))
    starred = any(isinstance(a, ast.Starred) for a in call.args)
    if not signature.varargs and not starred and len(call.args) > signature.positional:
        takes = ("at most %d" % signature.positional) if signature.positional else "no"
        problems.append("%s(...) takes %s positional arguments in TF 1.15, got %d (has: %s)"
                        % (name, takes, len(call.args), has))
    return problems


def call_problems(tree, aliases, api, signatures):
    """(line, problem) of the calls of tf callables and of Dataset methods."""
    datasets = _Datasets(tree, aliases, api)
    problems = []
    for scope, nodes in datasets.scopes.items():
        names = datasets.names(scope)
        for call in nodes:
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            parts = _chain(func)
            if parts and parts[0] in aliases:
                path, bound = ".".join(parts[1:]), False
            elif (isinstance(func, ast.Attribute) and not func.attr.startswith("_")
                  and datasets.is_dataset(func.value, names)):
                path, bound = DATASET + "." + func.attr, True
                if not datasets.has_method(func.attr):
                    problems.append((call.lineno, api_problem(path, api)))
                    continue
            else:
                continue
            signature = signatures.get(path)
            if signature is not None:
                for why in argument_problems(call, "tf." + path,
                                             _bound(signature) if bound else signature):
                    problems.append((call.lineno, why))
    return problems


def check_source(source, filename, api, signatures=None):
    problems = syntax_problems(source, filename)
    if problems:
        return problems
    signatures = signatures if signatures is not None else load_signatures()
    tree = ast.parse(source, filename)
    aliases, problems = tf_imports(tree, filename)
    found = [(line, api_problem(path, api)) for path, line in _tf_chains(tree, aliases)]
    found += call_problems(tree, aliases, api, signatures)
    found.sort(key=lambda problem: problem[0])
    return problems + ["%s:%d: %s" % (filename, line, why) for line, why in found if why]


def check_files(paths, api=None, signatures=None):
    api = api if api is not None else load_api()
    problems = []
    for path in paths:
        with open(path) as f:
            problems.extend(check_source(f.read(), os.path.relpath(path, ROOT), api,
                                         signatures))
    return problems


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    problems = check_files(args or list(python_files()))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
