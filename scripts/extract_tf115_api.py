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
them.

With --signatures it also writes, as JSON, the parameters of every callable
among them ({path: parameters}; a generated __init__.py already names the
function that `tf_export(v1=[...])` exported under each v1 name):

    "nn.conv2d": "input, filter, strides, padding, ..., name, filters"
    "data.Dataset.batch": "self, batch_size, drop_remainder"
    "ConfigProto": "*, device_count, ..., allow_soft_placement, ..."
    "raw_ops.ApplyAdam": "*, var, m, v, ..."

written as Python writes a signature, without defaults (see _Signatures).
Both files are the test data of tests/test_compat.py and scripts/check_compat.py.

    pip download --no-deps --only-binary=:all: --python-version 3.7 \\
        --implementation cp --abi cp37m --platform manylinux2010_x86_64 \\
        -d /tmp/tf115 tensorflow==1.15.5
    python scripts/extract_tf115_api.py /tmp/tf115/tensorflow-1.15.5-*.whl \\
        tests/data/tf115_compat_v1_api.txt \\
        --signatures tests/data/tf115_signatures.json
"""

import argparse
import ast
import collections
import json
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
    """The Python modules in the wheel, parsed on demand; class members."""

    def __init__(self, wheel):
        self._wheel = wheel
        self._names = set(wheel.namelist())
        self._modules = {}
        self._class_tables = {}

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

    def tree(self, module):
        """The parsed source of `module` (a .py file or a package), or None."""
        path = _source_path(module)
        if path is None:
            return None
        tree = self._module(path)
        return tree if tree is not None else self._module(path[:-len(".py")] + "/__init__.py")

    def is_module(self, module):
        """Whether `module` is a .py file or a package in the wheel."""
        path = _source_path(module)
        return path is not None and (
            path in self._names or path[:-len(".py")] + "/__init__.py" in self._names)

    def _classes(self, path):
        """({name: ClassDef} at the top level of `path`, {alias: name} of its
        `alias = name` assignments at column 0), read once per file."""
        if path not in self._class_tables:
            tree = self._module(path)
            classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
            aliases = {}
            for node in ast.walk(tree):
                if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
                        and node.col_offset == 0):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            aliases[target.id] = node.value.id
            self._class_tables[path] = classes, aliases
        return self._class_tables[path]

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
        classes, aliases = self._classes(path)
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


# What a name is bound to. kind: "module" (node None), "function", "class"
# (node the FunctionDef / ClassDef) or "proto" (node the generated
# GeneratedProtocolMessageType(...) call); keyword_only: wrapped by
# kwarg_only, which refuses positional arguments (raw_ops).
_Definition = collections.namedtuple("_Definition", "kind module node keyword_only")

PROTO_CLASS = "GeneratedProtocolMessageType"
# Wrappers that keep the wrapped function's parameters (besides any
# `decorator(...)(f)`, such as tf_export(...)(f) or deprecated(...)(f)).
SAME_PARAMETERS = ("do_not_generate_docs", "add_dispatch_support")
KEYWORD_ONLY = "kwarg_only"
SENTINEL = "_sentinel"  # TF 1.15: "Used to prevent positional parameters"
NOT_CALLABLE = ("property", "abstractproperty", "cached_property", "setter", "getter",
                "deleter")


def _last_name(node):
    """'do_not_generate_docs' for `_doc_controls.do_not_generate_docs`,
    'kwarg_only' for `_kwarg_only`; None for other expressions."""
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_")
    if isinstance(node, ast.Name):
        return node.id.lstrip("_")
    return None


def _parameters(args, drop_first=False, keyword_only=False):
    """'a, b, *args, c, **kwargs' for an ast.arguments, as Python writes a
    signature without its defaults ('*, a, b': keywords only)."""
    names = [a.arg for a in args.args][1 if drop_first else 0:]
    keywords = [a.arg for a in args.kwonlyargs]
    vararg = args.vararg.arg if args.vararg else None
    if SENTINEL in names:  # it raises if given: what follows is keywords only
        at = names.index(SENTINEL)
        names, keywords = names[:at], names[at + 1:] + keywords
    if keyword_only:
        names, keywords, vararg = [], names + keywords, None
    parts = list(names)
    if vararg:
        parts.append("*" + vararg)
    elif keywords:
        parts.append("*")
    parts += keywords
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return ", ".join(parts)


def _top_level(body):
    """The statements run at a module's top level, within if and try too."""
    for node in body:
        if isinstance(node, (ast.If, ast.Try, ast.ExceptHandler)):
            for field in ("body", "handlers", "orelse", "finalbody"):
                for inner in _top_level(getattr(node, field, [])):
                    yield inner
        else:
            yield node


def _bindings(node):
    """(name, binding) for each name a top-level statement binds: ("def",
    node), ("value", expression or None), ("from", module, name) or
    ("module", dotted name); `from m import *` gives ("*", ("from", m, "*"))."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        yield node.name, ("def", node)
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name):
                yield target.id, ("value", node.value)
            elif isinstance(target, (ast.Tuple, ast.List)):  # a, b = ...: not followed
                for name in target.elts:
                    if isinstance(name, ast.Name):
                        yield name.id, ("value", None)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        for alias in node.names:
            yield alias.asname or alias.name, ("from", node.module, alias.name)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            module = alias.name if alias.asname else alias.name.split(".")[0]
            yield alias.asname or module, ("module", module)


def _class_binding(classdef, name):
    """The last statement of a class body that binds `name`, or None."""
    found = None
    for node in classdef.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            found = node
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found = node
    return found


def _method_parameters(function):
    """A method's parameters as seen through its class: `self` kept (it is
    passed explicitly there), `cls` dropped; None for a property."""
    decorators = {_last_name(d.func if isinstance(d, ast.Call) else d)
                  for d in function.decorator_list}
    if decorators & set(NOT_CALLABLE):
        return None
    return _parameters(function.args, drop_first="classmethod" in decorators)


def _namespace(call):
    """(key, value) pairs of the class dict in the generated
    GeneratedProtocolMessageType(name, bases, {...})."""
    namespace = call.args[2]
    return [(ast.literal_eval(k), v) for k, v in zip(namespace.keys, namespace.values)]


def _keyword(call, name):
    """The value of keyword argument `name` of a call."""
    return next(k.value for k in call.keywords if k.arg == name)


class _Signatures(object):
    """Parameters of the API's callables, read from their definitions in the
    wheel's source (never by importing it).

    Each is written as Python writes a signature, without defaults: "a, b,
    *args, c, **kwargs"; "*, a, b" takes keywords only. A class's are its
    constructor's (__init__ or __new__, found through its bases, without
    self); a method's keep `self` unless it is a static or class method (as
    inspect.signature(Class.method) shows them); a protocol buffer message's
    are its fields, keywords only. Decorators are looked through: TF 1.15's
    (tf_export, deprecation, dispatch) keep the wrapped signature, while its
    kwarg_only wrapper (raw_ops) and a `_sentinel` parameter (which raises if
    given) make parameters keywords only. Callables not defined in Python
    source in the wheel (C extensions, absl) or made by calls not followed
    here are left out.
    """

    def __init__(self, sources):
        self._sources = sources
        self._module_bindings = {}
        self._resolved = {}

    def of_symbols(self, symbols, paths):
        """{path: parameters} of the (path, module, name) symbols that are
        callables, and of the members `paths` lists for their classes."""
        members = collections.defaultdict(list)
        for path in paths:
            parent, _, name = path.rpartition(".")
            members[parent].append(name)
        signatures = {}
        for path, module, name in symbols:
            definition = self._resolve(module, name)
            if definition is not None:
                signatures.update(self._callables(path, definition, members[path]))
        return signatures

    def _callables(self, path, definition, member_names):
        """{path: parameters} of one API symbol and of its callable members."""
        found = {}
        if definition.kind == "function":
            found[path] = _parameters(definition.node.args,
                                      keyword_only=definition.keyword_only)
        elif definition.kind == "class":
            found[path] = self._constructor(definition)
            for name in member_names:
                found[path + "." + name] = self._member(definition, name)
        elif definition.kind == "proto":
            found.update(self._message(path, definition))
        return {p: s for p, s in found.items() if s is not None}

    def _bindings_of(self, module):
        """{name: [(line, binding), ...]} of a module's top level, in order."""
        if module not in self._module_bindings:
            tree = self._sources.tree(module)
            table = collections.defaultdict(list)
            for node in _top_level(tree.body if tree is not None else []):
                for name, binding in _bindings(node):
                    table[name].append((node.lineno, binding))
            self._module_bindings[module] = table
        return self._module_bindings[module]

    def _resolve(self, module, name, before=None):
        """The _Definition of `name` in `module` (its last binding above line
        `before`), or None if unknown."""
        key = (module, name, before)
        if key not in self._resolved:
            self._resolved[key] = None  # until known; also ends import cycles
            self._resolved[key] = self._find(module, name, before)
        return self._resolved[key]

    def _find(self, module, name, before):
        """_resolve's work: the binding in the module, else a star import's."""
        table = self._bindings_of(module)
        bindings = [b for b in table.get(name, ()) if before is None or b[0] < before]
        if bindings:
            line, binding = bindings[-1]
            return self._definition(module, line, binding)
        for _, (_, star_module, _) in table.get("*", ()):
            found = self._resolve(star_module, name)
            if found is not None:
                return found
        return None

    def _definition(self, module, line, binding):
        """The _Definition of a binding (see _bindings) at `line` of `module`."""
        if binding[0] == "def":
            kind = "class" if isinstance(binding[1], ast.ClassDef) else "function"
            return _Definition(kind, module, binding[1], False)
        if binding[0] == "module":
            return _Definition("module", binding[1], None, False)
        if binding[0] == "from":
            submodule = binding[1] + "." + binding[2]
            if self._sources.is_module(submodule):
                return _Definition("module", submodule, None, False)
            return self._resolve(binding[1], binding[2])
        return self._expression(module, binding[1], line)

    def _expression(self, module, node, line):
        """The _Definition an expression at line `line` of `module` evaluates to."""
        if isinstance(node, ast.Name):
            return self._resolve(module, node.id, line)
        if isinstance(node, ast.Attribute):
            owner = self._expression(module, node.value, line)
            if owner is not None and owner.kind == "module":
                return self._resolve(owner.module, node.attr)
        if isinstance(node, ast.Call):
            return self._wrapped(module, node, line)
        return None

    def _wrapped(self, module, call, line):
        """A generated message class, or a function wrapped by a call."""
        name = _last_name(call.func)
        if name == PROTO_CLASS:
            return _Definition("proto", module, call, False)
        if len(call.args) != 1 or call.keywords:
            return None
        wrapped = self._expression(module, call.args[0], line)
        if wrapped is None:
            return None
        if isinstance(call.func, ast.Call) or name in SAME_PARAMETERS:
            return wrapped
        if name == KEYWORD_ONLY:
            return wrapped._replace(keyword_only=True)
        return None

    def _mro(self, definition, depth=0):
        """The class and its bases, depth first; None for a base that is not a
        class in the wheel's source (beyond which nothing is known)."""
        yield definition
        for base in definition.node.bases:
            if isinstance(base, ast.Name) and base.id == "object":
                continue
            resolved = self._expression(definition.module, base, definition.node.lineno)
            if resolved is None or resolved.kind != "class" or depth > 20:  # 20: a cycle
                yield None
                return
            for cls in self._mro(resolved, depth + 1):
                yield cls

    def _constructor(self, definition):
        """A class's parameters: those of the first __init__ or __new__ in its
        bases, without self / cls; None if a base is unknown."""
        for cls in self._mro(definition):
            if cls is None:
                return None
            for name in ("__init__", "__new__"):
                method = _class_binding(cls.node, name)
                if isinstance(method, ast.FunctionDef):
                    return _parameters(method.args, drop_first=True)
        return ""

    def _member(self, definition, name):
        """Parameters of a class's method or nested class, None if neither."""
        for cls in self._mro(definition):
            if cls is None:
                return None
            node = _class_binding(cls.node, name)
            if isinstance(node, ast.FunctionDef):
                return _method_parameters(node)
            if isinstance(node, ast.ClassDef):
                return self._constructor(_Definition("class", cls.module, node, False))
            if node is not None:
                return None
        return None

    def _message(self, path, definition):
        """{path: "*, field, ..."} of a message class and its nested messages."""
        found = {}
        for key, value in _namespace(definition.node):
            if key == "DESCRIPTOR":
                found[path] = self._fields(definition.module, value)
            elif isinstance(value, ast.Call) and _last_name(value.func) == PROTO_CLASS:
                found.update(self._message(path + "." + key, definition._replace(node=value)))
        return found

    def _fields(self, module, descriptor):
        """The field names of `_X = _descriptor.Descriptor(..., fields=[...])`."""
        _, (_, call) = self._bindings_of(module)[descriptor.id][-1]
        names = [ast.literal_eval(_keyword(field, "name"))
                 for field in _keyword(call, "fields").elts]
        return ", ".join(["*"] + names) if names else ""


def _api_modules(wheel, wheel_path):
    """(dotted prefix, parsed __init__.py) of each module of the API."""
    inits = [n for n in wheel.namelist()
             if n.startswith(API_ROOT) and n.endswith("/__init__.py")]
    if not inits:
        raise SystemExit("%s holds no %s**/__init__.py: is it TensorFlow 1.15?"
                         % (wheel_path, API_ROOT))
    for init in inits:
        prefix = init[len(API_ROOT):-len("__init__.py")].strip("/").replace("/", ".")
        yield prefix, ast.parse(wheel.read(init))


def _public_imports(tree, prefix):
    """(public path, source module, name there) of each public symbol that an
    API __init__.py imports. The generator wrote these from the `tf_export`
    names, so the v1 name already points at the v1 function."""
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        for alias in node.names:
            public = alias.asname or alias.name
            if not public.startswith("_"):
                yield (prefix + "." + public if prefix else public), node.module, alias.name


def _read(wheel_path, with_signatures):
    """(sorted public paths, {path: parameters} or None)."""
    wheel = zipfile.ZipFile(wheel_path)
    sources = _SourceIndex(wheel)
    paths, symbols = set(), []
    for prefix, tree in _api_modules(wheel, wheel_path):
        if prefix:
            paths.add(prefix)
        for path, module, name in _public_imports(tree, prefix):
            paths.add(path)
            if module.startswith(V1_PACKAGE):
                continue  # a submodule, listed from its own __init__.py
            symbols.append((path, module, name))
            members = sources.class_members(module, name)
            for member in members or ():
                paths.add(path + "." + member)
    paths = sorted(paths)
    if not with_signatures:
        return paths, None
    return paths, _Signatures(sources).of_symbols(symbols, paths)


def extract(wheel_path):
    """Returns the sorted list of dotted public paths under tf.compat.v1."""
    return _read(wheel_path, with_signatures=False)[0]


def extract_signatures(wheel_path):
    """(the sorted public paths, {path: parameters} of the callable ones)."""
    return _read(wheel_path, with_signatures=True)


def _write(path, text):
    """Replaces file `path` by `text` in one step."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", help="path to tensorflow-1.15.*.whl")
    parser.add_argument("output", help="text file to write, one path per line")
    parser.add_argument("--signatures", metavar="JSON",
                        help="also write the parameters of its callables to this file")
    args = parser.parse_args(argv)
    wheel = os.path.basename(args.wheel)
    paths, signatures = _read(args.wheel, with_signatures=bool(args.signatures))
    _write(args.output, "# tf.compat.v1 public API of %s (scripts/extract_tf115_api.py)\n"
           % wheel + "\n".join(paths) + "\n")
    print("%d paths written to %s" % (len(paths), args.output))
    if signatures is not None:
        signatures["#"] = ("parameters of tf.compat.v1's callables in %s "
                           "(scripts/extract_tf115_api.py)" % wheel)
        _write(args.signatures, json.dumps(signatures, indent=0, sort_keys=True) + "\n")
        print("%d signatures written to %s" % (len(signatures) - 1, args.signatures))


if __name__ == "__main__":
    sys.exit(main())
