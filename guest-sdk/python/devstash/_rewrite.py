"""``# @devstash`` markers: the main script, rewritten so that its marked calls go through the
store, then run as ``__main__``.

A marker is a comment: at the end of the line where a call starts (inline), or alone on the line
just before it (standalone), optionally with a TTL::

    result = slow_function(5)  # @devstash
    # @devstash ttl=30m
    rows = load_rows("data.csv")

Every call that starts on a marked line (and is not inside another call marked by the same
marker) is rewritten from ``f(a, b=c)`` to ``__devstash_mN__(f, a, b=c)``, where
``__devstash_mN__`` is the marker's function (see ``_bridge.make_marker``). The code is compiled
with the script's real file name, so tracebacks point at the user's lines.

The regular expressions and the TTL syntax are those of devstash 0.1.1.
"""

import ast
import io
import os
import re
import sys
import tokenize

from . import _bridge
from ._ttl import parse_ttl

DEVSTASH_INLINE_RE = re.compile(r"#\s*@devstash")
DEVSTASH_STANDALONE_RE = re.compile(r"^\s*#\s*@devstash(\s+ttl\s*=\s*\S+)?\s*$")
DEVSTASH_TTL_RE = re.compile(r"ttl\s*=\s*([0-9]+[smhdw])")
# A TTL as written, valid or not, to refuse one 0.1.1 would have silently ignored.
_TTL_WRITTEN_RE = re.compile(r"ttl\s*=\s*(\S*)")

MARKER_NAME = "__devstash_m{}__"  # dunder on both sides: never mangled inside a class body


def is_devstash_marker(line):
    """True if `line` is only a ``# @devstash`` marker (whitespace tolerant)."""
    return bool(DEVSTASH_STANDALONE_RE.match(line))


def extract_ttl(line):
    """The ``ttl=...`` value of a line (``"30m"``), if it has one."""
    match = DEVSTASH_TTL_RE.search(line)
    return match.group(1) if match else None


def _ttl_of(comment, filename, line):
    ttl = extract_ttl(comment)
    if ttl is None:
        written = _TTL_WRITTEN_RE.search(comment)
        if written is None:
            return None
        ttl = written.group(1)
    try:
        return parse_ttl(ttl)
    except ValueError as e:
        e.add_note(f'in the marker "{comment.strip()}" at {filename}:{line}')
        raise


def find_markers(text, filename):
    """The marked lines of a source: ``(inline, standalone)``, each a dict from line number to
    the marker's TTL in seconds (None: kept until cleared). Only real comments count, never a
    ``# @devstash`` inside a string."""
    inline, standalone = {}, {}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        comment = tok.string
        if not DEVSTASH_INLINE_RE.search(comment):
            continue
        line = tok.start[0]
        alone = not tok.line[: tok.start[1]].strip()
        if alone and is_devstash_marker(tok.line):
            standalone[line] = _ttl_of(comment, filename, line)
        else:
            inline[line] = _ttl_of(comment, filename, line)
    return inline, standalone


class _Rewriter(ast.NodeTransformer):
    def __init__(self, inline, standalone, filename):
        self.inline = inline
        self.standalone = standalone
        self.filename = filename
        self.markers = []  # (line of the call, ttl seconds), by marker function number
        self.used = set()
        self.active = set()

    def visit_Call(self, node):
        line = node.lineno
        if line in self.inline:
            marker_line, ttl = line, self.inline[line]
        elif line - 1 in self.standalone:
            marker_line, ttl = line - 1, self.standalone[line - 1]
        else:
            return self.generic_visit(node)
        if marker_line in self.active:  # inside a call this marker already wraps
            return self.generic_visit(node)
        self.used.add(marker_line)
        if isinstance(node.func, ast.Name) and node.func.id == "print":
            # As in 0.1.1, the outermost call is the one marked: a stored print() prints
            # nothing on a hit, which is never what was meant.
            _bridge.warn_once(
                ("print-marker", self.filename, line),
                f"devstash: {self.filename}:{line}: the marker stores print(...), the outermost "
                f"call on its line, so a hit prints nothing; mark the inner call on a line of "
                f"its own (value = compute(x)  # @devstash)",
            )
        name = ast.Name(id=MARKER_NAME.format(len(self.markers)), ctx=ast.Load())
        self.markers.append((line, ttl))
        ast.copy_location(name, node)
        new = ast.copy_location(
            ast.Call(func=name, args=[node.func, *node.args], keywords=node.keywords), node
        )
        self.active.add(marker_line)
        try:
            self.generic_visit(new)
        finally:
            self.active.discard(marker_line)
        return new


def rewrite(source, filename):
    """Compiles a script with its marked calls rewritten: ``(code, markers)``, where markers[i]
    is the ``(line, ttl_secs)`` of the function named ``__devstash_m{i}__``."""
    if isinstance(source, bytes):
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        source = source.decode(encoding)
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    tree = ast.parse(source, filename=filename)
    inline, standalone = find_markers(source, filename)
    rewriter = _Rewriter(inline, standalone, filename)
    tree = rewriter.visit(tree)
    ast.fix_missing_locations(tree)
    for line in sorted(set(inline) | set(standalone)):
        if line not in rewriter.used:
            _bridge.warn_once(
                ("unused-marker", filename, line),
                f"devstash: {filename}:{line}: this # @devstash marker marks no call (put it at "
                f"the end of the line where the call starts, or alone on the line just before "
                f"it)",
            )
    code = compile(tree, filename, "exec", dont_inherit=True)
    return code, rewriter.markers


def rewrite_and_run_main(main_file):
    """Rewrites the main script, runs it as ``__main__`` in a fresh module, then exits 0 (the
    original, unrewritten run of the script stops here)."""
    import builtins
    import types

    path = os.fspath(main_file)
    with open(path, "rb") as f:
        data = f.read()
    code, markers = rewrite(data, path)
    _bridge.set_main_name(path)
    module_name = _bridge.module_name("__main__")
    old = sys.modules.get("__main__")
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["__file__"] = path
    namespace["__builtins__"] = builtins
    namespace["__cached__"] = None
    for attr in ("__spec__", "__loader__", "__package__"):
        namespace[attr] = getattr(old, attr, None)
    for i, (line, ttl_secs) in enumerate(markers):
        namespace[MARKER_NAME.format(i)] = _bridge.make_marker(path, line, ttl_secs, module_name)
    # The new module is __main__, so that pickle finds the classes the script defines.
    sys.modules["__main__"] = module
    exec(code, namespace)
    sys.exit(0)
