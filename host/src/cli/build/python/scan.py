"""Reads a wasmhost Python app without running it: checks its syntax and lists the
packages named in `Image...pip_install(...)` calls. Prints one JSON object."""

import ast
import json
import sys

INSTALLERS = {"pip_install", "uv_pip_install"}


def strings(node):
    """The string constants of an argument: a literal or a list/tuple of literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value], []
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        out, bad = [], []
        for item in node.elts:
            got, nope = strings(item)
            out += got
            bad += nope
        return out, bad
    return [], [getattr(node, "lineno", 0)]


def main(path):
    with open(path, "rb") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        print(json.dumps({"syntax_error": {"line": err.lineno or 0, "column": err.offset or 0, "message": err.msg}}))
        return
    packages, dynamic = [], []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in INSTALLERS
        ):
            for arg in node.args:
                got, bad = strings(arg)
                packages += got
                dynamic += bad
    print(json.dumps({"packages": packages, "dynamic_lines": dynamic}))


main(sys.argv[1])
