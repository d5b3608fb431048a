"""The bridge to the devstash runner, and what a marked call does.

The runner answers requests made through the runtime's one host import, seen in Python as the
built-in module ``_host``: ``_host.call(request) -> bytes`` (a request is one op byte and its
operands; integers are little endian). A marked call registers its site once (``R``), then
costs one ``G`` on a hit; on a miss it runs between ``B`` and ``E`` and its pickled value is
stored with ``P`` (``F`` when it raised).

Without a runner (plain CPython, or the runtime with no host bound to ``_host``) every marked
call simply runs, after one warning on stderr.
"""

import os
import pickle
import struct
import sys
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType

from . import _key
from ._key import REQUEST_HEAD as _HEAD
from ._key import TYPES, Unkeyable, call_request

try:
    import _host

    _host_call = _host.call
except ImportError:  # plain CPython: no runner
    _host_call = None

ABI_VERSION = 2

# Statuses of G, the first byte of its answer.
_HIT = 0
_MISS = 1
_CORRUPT = 0xFC  # -4 as a byte: the stored value failed verification
_REFRESH = 1  # G flag: the value handed back could not be used, give me a ticket

_pack_I = struct.Struct("<I").pack
_pack_II = struct.Struct("<II").pack
_pack_Q = struct.Struct("<Q").pack
_loads = pickle.loads
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200

NO_RUNNER = "devstash: not running under the devstash runner; marked calls run uncached"

# -------------------------------------------------------------------------------------------------
# The runner's presence: unknown until first needed, then known for the whole run.

_UNKNOWN, _ON, _OFF = 0, 1, 2
_state = _UNKNOWN
_warned = set()


def warn_once(key, message):
    """Writes `message` on stderr the first time `key` is seen (never stdout: it is the
    program's)."""
    if key in _warned:
        return
    _warned.add(key)
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except Exception:  # a closed or odd stderr must not break the program
        pass


def _off(message=NO_RUNNER):
    global _state
    _state = _OFF
    warn_once("no-runner", message)


def running():
    """Whether the devstash runner answers (asked once: a ``K`` digest of nothing)."""
    global _state
    if _state == _UNKNOWN:
        if _host_call is None:
            _off()
            return False
        try:
            answer = _host_call(b"K")
        except ConnectionRefusedError:  # the runtime, with no host bound to its door
            _off()
            return False
        except OSError as e:
            _off(f"{NO_RUNNER} (the host failed: {e})")
            return False
        if len(answer) != 32:
            _off(f"{NO_RUNNER} (the host bound to _host does not speak devstash's protocol)")
            return False
        _state = _ON
        _key.digest = digest
        _key.secret_hash = secret_hash
    return _state == _ON


def _flush():
    """Writes out what the program printed so far: before every lookup, and before a computed
    call's end. A recording keeps what a computed call printed with the call, and a replay,
    which does not run it, prints that in its place. The runtime's stdout is block-buffered:
    without these, output from before the lookup would be written inside the call (and twice
    by a replay), and the call's own would be written after it (and not at all by a replay)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or odd stream must not break the program
            pass


def request(data):
    """Sends one request to the runner and returns its answer (the runner must be there)."""
    return _host_call(data)


def digest(data):
    """blake3 of `data`, computed natively by the runner (32 bytes)."""
    return _host_call(b"K" + data)


def secret_hash(data):
    """The runner's keyed hash of a secret (32 bytes), under a key no guest can read."""
    answer = _host_call(b"S" + data)
    if len(answer) != 32:
        raise Unkeyable(None, "the runner gave no hash for a devstash.Secret")
    return answer


_LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4}


def log(level, message):
    """A line in the runner's log (shown with ``devstash run -v``); nothing without a runner."""
    if running():
        _host_call(b"L" + bytes((_LEVELS.get(level, 2),)) + message.encode("utf-8", "replace"))


def register(desc):
    """Registers a site; its handle, or None when calls of it must run uncached."""
    if not running():
        return None
    answer = _host_call(b"R" + _json_object(desc).encode())
    if len(answer) != 4:
        return None
    handle = int.from_bytes(answer, "little", signed=True)
    return handle if handle >= 0 else None


def _json_object(desc):
    """``json.dumps(desc, separators=(",", ":"))`` (the same text) for a dict of str, int, bool
    and None values, with json's own string encoder but without importing json: its import
    (json.decoder, json.scanner...) costs milliseconds in the runtime, on a program's first
    call."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # a Python without json's accelerator
        quote = None
    parts = []
    for name, v in desc.items():
        if v is None:
            text = "null"
        elif v is True:
            text = "true"
        elif v is False:
            text = "false"
        elif type(v) is int:
            text = int.__repr__(v)
        elif type(v) is str and quote is not None:
            text = quote(v)
        else:
            quote = None
        if quote is None or type(name) is not str:
            import json

            return json.dumps(desc, separators=(",", ":"))
        parts.append(quote(name) + ":" + text)
    return "{" + ",".join(parts) + "}"


# -------------------------------------------------------------------------------------------------
# Names and fingerprints

_main_name = None


def module_name(name):
    """A module's name for sites: the main script is named by its file's stem
    (``quickstart`` for quickstart.py), not ``__main__``."""
    global _main_name
    if name != "__main__":
        return name or "__main__"
    if _main_name is None:
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
        stem = os.path.splitext(os.path.basename(path or ""))[0]
        _main_name = stem if stem and stem.isidentifier() else "__main__"
    return _main_name


def set_main_name(path):
    """Names the main script's module after `path` (its stem)."""
    global _main_name
    stem = os.path.splitext(os.path.basename(path))[0]
    _main_name = stem if stem else "__main__"


_lib_prefixes = None


def _library_prefixes():
    global _lib_prefixes
    if _lib_prefixes is None:
        prefixes = {"/usr/local/lib/python315.zip/"}
        for p in sys.path:
            if isinstance(p, str) and p.endswith(".zip"):
                prefixes.add(p + "/")
        stdlib = os.path.dirname(getattr(os, "__file__", "") or "")
        if stdlib:
            prefixes.add(stdlib.rstrip("/") + "/")
        prefixes.add(os.path.dirname(os.path.abspath(__file__)) + "/")
        _lib_prefixes = tuple(prefixes)
    return _lib_prefixes


def is_library_file(filename):
    """Whether code from `filename` is the stdlib's, a packaged library's, or this SDK's (keyed
    by its package's version) rather than the user's (keyed by its source)."""
    if not filename or filename.startswith("<frozen"):
        return True
    if filename.startswith(_library_prefixes()):
        return True
    if not filename.startswith("/"):
        return False
    return os.path.abspath(filename).startswith(_library_prefixes())


def library_fingerprint(module):
    """A library callee changes with its package's version (and the Python it runs on)."""
    top = (module or "").partition(".")[0]
    version = getattr(sys.modules.get(top), "__version__", None)
    py = "%d.%d.%d" % sys.version_info[:3]
    return f"lib:{module};{top}=={version};py{py}" if version else f"lib:{module};py{py}"


def _last_line(code, last=0):
    try:
        for _start, end, _c0, _c1 in code.co_positions():
            if end is not None and end > last:
                last = end
    except AttributeError:  # before 3.11
        for _s, _e, line in code.co_lines():
            if line is not None and line > last:
                last = line
    for c in code.co_consts:
        if type(c) is type(code):
            last = _last_line(c, last)
    return last


def _source_lines(filename):
    """``linecache.getlines(filename)`` (the same lines), without importing tokenize where the
    file needs none of it: that import costs milliseconds in the runtime, on a program's first
    call. tokenize decides a file's encoding (UTF-8 unless a BOM or a coding cookie in its first
    two lines says otherwise) and reads it with universal newlines, as done here; anything
    else (a file linecache holds already, a BOM, a cookie, bytes that are not UTF-8, a file
    not found as named) goes through linecache itself. The lines read are kept in linecache's
    cache as it keeps them, so the next function of the file, and a traceback, reads them
    there."""
    import linecache

    if (
        filename in linecache.cache
        or not filename
        or (filename.startswith("<") and filename.endswith(">"))
    ):
        return linecache.getlines(filename)
    try:
        with open(filename, "rb") as f:
            stat = os.fstat(f.fileno())
            data = f.read()
    except (OSError, ValueError):
        return linecache.getlines(filename)
    top = data.split(b"\n", 2)[:2]
    if data.startswith(b"\xef\xbb\xbf") or any(b"coding" in line for line in top):
        return linecache.getlines(filename)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return linecache.getlines(filename)
    import io

    lines = io.StringIO(text, newline=None).readlines()
    if not lines:  # versions differ on an empty file
        return linecache.getlines(filename)
    if not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (stat.st_size, stat.st_mtime, lines, filename)
    return lines


def _source_text(code):
    """The text of the lines a code object was compiled from (from its first line, decorators
    included, to the end of its last expression), or None."""
    lines = _source_lines(code.co_filename)
    first = code.co_firstlineno
    if not lines or first < 1:
        return None
    last = max(_last_line(code), first)
    return "".join(lines[first - 1 : last])


_fingerprints = {}  # id(code) -> (code, fingerprint)


def code_fingerprint(func):
    """The fingerprint of a Python function: a hash of its source text and of its code, so that
    editing it invalidates its entries; a library function's, by its package's version."""
    code = func.__code__
    known = _fingerprints.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    if is_library_file(code.co_filename):
        fp = library_fingerprint(getattr(func, "__module__", None))
    else:
        import hashlib

        h = hashlib.blake2b(digest_size=32)
        try:
            text = _source_text(code)
        except Exception:
            text = None
        if text is not None:
            h.update(b"source\x00")
            h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00code\x00")
        _key._code_digest(code, h)
        fp = h.hexdigest()
    _fingerprints[id(code)] = (code, fp)
    return fp


_key.code_fingerprint = code_fingerprint


def _wrapped_fingerprint(func, fp):
    """For a decorated function (functools.wraps), the wrapped function counts too."""
    inner = getattr(func, "__wrapped__", None)
    seen = 0
    parts = [fp]
    while inner is not None and seen < 16:
        if type(inner) is FunctionType:
            parts.append(code_fingerprint(inner))
        elif isinstance(inner, MethodType) and type(inner.__func__) is FunctionType:
            parts.append(code_fingerprint(inner.__func__))
        inner = getattr(inner, "__wrapped__", None)
        seen += 1
    if len(parts) == 1:
        return fp
    import hashlib

    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=32).hexdigest()


def class_fingerprint(cls):
    """A class called as a callee: its source where it has one, and the code of its methods."""
    if is_library_file(getattr(sys.modules.get(cls.__module__), "__file__", None) or ""):
        return library_fingerprint(cls.__module__)
    import hashlib

    h = hashlib.blake2b(digest_size=32)
    try:
        import inspect

        h.update(inspect.getsource(cls).encode("utf-8", "surrogatepass"))
    except Exception:
        pass
    for klass in cls.__mro__:
        if klass is object:
            continue
        for name in sorted(vars(klass)):
            member = vars(klass)[name]
            member = getattr(member, "__func__", member)
            if type(member) is FunctionType:
                h.update(f"\x00{klass.__qualname__}.{name}\x00".encode())
                h.update(code_fingerprint(member).encode())
    return h.hexdigest()


# -------------------------------------------------------------------------------------------------
# Previews: repr of the arguments, bounded


_repr = None


def _make_repr():
    import reprlib

    class _Repr(reprlib.Repr):
        def __init__(self):
            super().__init__()
            self.maxstring = 80
            self.maxother = 80
            self.maxlevel = 3
            self.maxtuple = self.maxlist = self.maxarray = 8
            self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 8

        def repr_bytes(self, x, level):
            if len(x) <= self.maxstring:
                return repr(x)
            return repr(x[: self.maxstring]) + f"...({len(x)} bytes)"

        def repr_bytearray(self, x, level):
            return "bytearray(" + self.repr_bytes(bytes(x[: self.maxstring + 1]), level) + ")"

        def repr_memoryview(self, x, level):
            return f"<memoryview {x.nbytes} bytes>"

        def repr_ndarray(self, x, level):
            return f"array(shape={x.shape}, dtype={x.dtype})"

        def repr_DataFrame(self, x, level):
            return f"DataFrame(shape={x.shape}, columns={self.repr(list(x.columns[:8]))})"

        def repr_Series(self, x, level):
            return f"Series(name={x.name!r}, len={len(x)}, dtype={x.dtype})"

    return _Repr()


def preview(args, kwargs):
    """UTF-8 text describing a call's arguments, at most 200 bytes (sent with its value)."""
    global _repr
    if _repr is None:
        _repr = _make_repr()
    try:
        r = _repr.repr
        parts = [r(a) for a in args]
        parts.extend(f"{k}={r(v)}" for k, v in kwargs.items())
        text = "(" + ", ".join(parts) + ")"
    except Exception:
        return b""
    b = text.encode("utf-8", "replace")
    if len(b) > 200:
        b = b[:200].decode("utf-8", "ignore").encode()
    return b


# -------------------------------------------------------------------------------------------------
# Sites


# Small hit answers of immutable values -> the value: a hit of `slow_function(5)` then costs a
# dict lookup instead of an unpickling. The answer's bytes decide the value, and an immutable
# value is indistinguishable from a fresh copy of it.
_memo = {}
_MEMO_TYPES = frozenset((int, float, str, bytes, bool, type(None), complex))
_MEMO_MAX_ANSWER = 128
_MEMO_MAX_ENTRIES = 4096


# Hit answers that are an int or a float pickled alone, by their length: the answer's head
# (status, and the pickle up to its value: PROTO 5, FRAME of the exact length, the opcode) and
# how to read the value after it, before STOP. pickle.dumps gives exactly these bytes for such a
# value, and pickle.loads would give back exactly the value read here (the same bits); reading
# it costs half of what building an unpickler does.
def _scalar_answer(head, fmt):
    unpack = struct.Struct(fmt)
    return len(head) + unpack.size + 1, (head, len(head), unpack.unpack_from)


_SCALAR_ANSWERS = dict(
    (
        _scalar_answer(b"\x00\x80\x05K", "<B"),  # BININT1 (0..255: too short to be framed)
        _scalar_answer(b"\x00\x80\x05\x95" + _pack_Q(4) + b"M", "<H"),  # BININT2 (to 65535)
        _scalar_answer(b"\x00\x80\x05\x95" + _pack_Q(6) + b"J", "<i"),  # BININT4 (32 bits)
        _scalar_answer(b"\x00\x80\x05\x95" + _pack_Q(10) + b"G", ">d"),  # BINFLOAT
    )
)


def _decode(r):
    """The value of a hit answer (status byte, pickle)."""
    n = len(r)
    small = _SCALAR_ANSWERS.get(n)
    if small is not None:
        head, at, unpack = small
        if r[-1] == 46 and r.startswith(head):  # and ends with STOP
            return unpack(r, at)[0]
    if n <= _MEMO_MAX_ANSWER:
        value = _memo.get(r, _memo)
        if value is not _memo:
            return value
        value = _loads(r[1:])
        if type(value) in _MEMO_TYPES and len(_memo) < _MEMO_MAX_ENTRIES:
            _memo[r] = value
        return value
    return _loads(memoryview(r)[1:] if len(r) > 65536 else r[1:])


async def _ready(value):
    return value


def _type_name(t):
    return f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', t.__name__)}"


class Site:
    """One marked call site (per distinct callee), or one ``@stash`` function."""

    __slots__ = (
        "kind",
        "module",
        "file",
        "line",
        "ttl_secs",
        "callee",
        "fingerprint",
        "fingerprint_of",
        "params",
        "qualname",
        "code",
        "is_async",
        "gprefix",
        "rprefix",
        "disabled",
        "keep",
        "closure",
    )

    def __init__(self, kind, module, file, line, ttl_secs, callee, fingerprint_of, params=()):
        self.kind = kind
        self.module = module
        self.file = file
        self.line = line
        self.ttl_secs = ttl_secs
        self.callee = callee
        self.fingerprint = None
        # How to fingerprint the callee, run only when the site registers (never without a
        # runner, and never on a hit).
        self.fingerprint_of = fingerprint_of
        self.params = params
        self.qualname = None
        self.code = None
        self.is_async = False
        self.gprefix = None
        self.rprefix = None
        self.disabled = False
        self.keep = None
        # Whether the callee's code has free variables (so its functions have closure cells,
        # whose values count): set by `function_site`.
        self.closure = False

    def _register(self):
        if not running():
            self.disabled = True
            return False
        self.fingerprint = self.fingerprint_of()
        handle = register(
            {
                "abi": ABI_VERSION,
                "module": self.module,
                "callee": self.callee,
                "file": self.file,
                "line": self.line,
                "ttl_secs": self.ttl_secs,
                "fingerprint": self.fingerprint,
                "value_type": "python-pickle",
                "kind": self.kind,
                "types": TYPES + (";async" if self.is_async else ""),
            }
        )
        if handle is None:
            self.disabled = True
            return False
        self.gprefix = b"G" + _pack_II(handle, 0)
        self.rprefix = b"G" + _pack_II(handle, _REFRESH)
        return True

    # The hot path: a Python function (or a method's function, with its object first). A hit
    # is one request and no more: every attribute lookup, call and allocation on this path
    # shows in its cost.
    def call_function(self, func, args, kwargs):
        """Runs `func(*args, **kwargs)` through the store."""
        prefix = self.gprefix
        if prefix is None:
            if self.disabled or not self._register():
                return func(*args, **kwargs)
            prefix = self.gprefix
        try:
            req = call_request(prefix, args, kwargs)
            if self.closure or func.__defaults__ is not None or func.__kwdefaults__ is not None:
                req += _function_extras(func, args, kwargs)
        except Unkeyable as e:
            raise self._unkeyable(e, args, kwargs) from None
        except RecursionError:
            _key.reset()
            raise self._too_deep() from None
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # a closed or odd stream: each alone, as `_flush` does
            _flush()
        r = _host_call(req)
        if r[0] == 0:  # _HIT
            try:
                value = _decode(r)
            except Exception as e:
                return self._lookup_again(e, req[_HEAD:], func, args, kwargs)
            return _ready(value) if self.is_async else value
        return self._not_hit(r, req[_HEAD:], func, args, kwargs)

    def call(self, func, args, kwargs, key_args):
        """Runs `func(*args, **kwargs)` through the store, keyed by `key_args` (the arguments
        with the callee's object first, for a bound method) and `kwargs`."""
        prefix = self.gprefix
        if prefix is None:
            if self.disabled or not self._register():
                return func(*args, **kwargs)
            prefix = self.gprefix
        try:
            req = call_request(prefix, key_args, kwargs)
        except Unkeyable as e:
            raise self._unkeyable(e, key_args, kwargs) from None
        except RecursionError:
            _key.reset()
            raise self._too_deep() from None
        _flush()
        r = _host_call(req)
        if r[0] == _HIT:
            try:
                value = _decode(r)
            except Exception as e:
                return self._lookup_again(e, req[_HEAD:], func, args, kwargs, key_args)
            return _ready(value) if self.is_async else value
        return self._not_hit(r, req[_HEAD:], func, args, kwargs, key_args)

    def _lookup_again(self, error, key, func, args, kwargs, key_args=None):
        log(
            "warn",
            f"{self.callee}: the stored value cannot be unpickled "
            f"({type(error).__name__}: {error}); recomputing it",
        )
        r = _host_call(self.rprefix + key)
        if r[0] == _HIT:  # a replay hands back what the recording saw
            try:
                value = _loads(r[1:])
            except Exception:
                return func(*args, **kwargs)
            return _ready(value) if self.is_async else value
        return self._not_hit(r, key, func, args, kwargs, key_args, refreshed=True)

    def _not_hit(self, r, key, func, args, kwargs, key_args=None, refreshed=False):
        status = r[0]
        if status == _CORRUPT and not refreshed:
            r = _host_call(self.rprefix + key)
            status = r[0]
            if status == _HIT:
                try:
                    value = _loads(r[1:])
                except Exception:
                    return func(*args, **kwargs)
                return _ready(value) if self.is_async else value
        if status != _MISS or len(r) != 9:
            raise RuntimeError(
                f"devstash: the runner answered a lookup of {self.callee} with status {status}"
            )
        ticket = r[1:9]
        shown = preview(args if key_args is None else key_args, kwargs)
        if self.is_async:
            return self._compute_async(ticket, shown, func, args, kwargs)
        _host_call(b"B" + ticket)
        try:
            value = func(*args, **kwargs)
        except BaseException:
            _flush()
            _host_call(b"F" + ticket)
            raise
        _flush()
        _host_call(b"E" + ticket)
        self._store(ticket, shown, value)
        return value

    async def _compute_async(self, ticket, shown, func, args, kwargs):
        _host_call(b"B" + ticket)
        try:
            value = await func(*args, **kwargs)
        except BaseException:
            _flush()
            _host_call(b"F" + ticket)
            raise
        _flush()
        _host_call(b"E" + ticket)
        self._store(ticket, shown, value)
        return value

    def _store(self, ticket, shown, value):
        import io

        buf = io.BytesIO()
        buf.write(b"P" + ticket + _pack_I(len(shown)) + shown)
        try:
            pickle.dump(value, buf, protocol=_key.PICKLE_PROTOCOL)
        except Exception as e:
            _host_call(b"F" + ticket)
            warn_once(
                ("unpicklable", self.callee),
                f"devstash: {self.callee}'s value of type {_type_name(type(value))} cannot be "
                f"pickled, so it is not stored: {e}",
            )
            return
        with buf.getbuffer() as view:
            _host_call(view)

    def _unkeyable(self, e, args, kwargs):
        _key.reset()
        obj = e.obj

        def locate(root):
            if obj is None:
                return None
            try:
                return _key.locate(root, obj)
            except Exception:  # an object whose attributes cannot even be read
                return None

        what = "a value inside its arguments, or one it captures (a closure cell or a default)"
        for i, a in enumerate(args):
            path = locate(a)
            if path is not None:
                named = i < len(self.params)
                name = self.params[i] if named else f"args[{i}]"
                what = f"argument {name!r}" if named else f"argument {i + 1}"
                if path:
                    what += f" (at {name}{path})"
                break
        else:
            for name, v in kwargs.items():
                path = locate(v)
                if path is not None:
                    what = f"argument {name!r}" + (f" (at {name}{path})" if path else "")
                    break
        of_type = f"of type {_type_name(type(obj))} " if obj is not None else ""
        return TypeError(
            f"devstash cannot key {what} of {self.callee}: a value {of_type}{e.why}. Pass "
            f"values devstash can key (numbers, strings, bytes, containers of them, "
            f"dataclasses and other picklable objects), wrap a secret in devstash.secret(...), "
            f"give the type a __getstate__ that returns what decides the result, or remove "
            f"the marker from this call."
        )

    def _too_deep(self):
        return TypeError(
            f"devstash cannot key the arguments of {self.callee}: they are nested deeper than "
            f"Python's recursion limit allows. Pass a flatter value, or remove the marker."
        )


def _function_extras(func, args, kwargs):
    """What a function's result depends on besides its arguments: its closure cells, and the
    default values this call used (a closure or a function made anew may have others)."""
    closure = func.__closure__
    used = []
    defaults = func.__defaults__
    code = func.__code__
    if defaults:
        n = code.co_argcount
        first = n - len(defaults)
        names = code.co_varnames
        for i in range(max(len(args), first), n):
            name = names[i]
            if name not in kwargs:
                used.append((name, defaults[i - first]))
    kwdefaults = func.__kwdefaults__
    if kwdefaults:
        for name, v in kwdefaults.items():
            if name not in kwargs:
                used.append((name, v))
    if not closure and not used:
        return b""
    return _key.extras(used) + _key.closure_bytes(func, 1)


def _params(code):
    n = code.co_argcount + code.co_kwonlyargcount
    return code.co_varnames[:n]


def function_site(func, kind, module, file, line, ttl_secs):
    """A site whose callee is a Python function."""
    code = func.__code__
    mod = module_name(getattr(func, "__module__", None))
    callee = f"{mod}.{func.__qualname__}"
    if kind == "fn":
        module, file, line = mod, code.co_filename, code.co_firstlineno

    def fingerprint():
        return _wrapped_fingerprint(func, code_fingerprint(func))

    site = Site(kind, module, file, line, ttl_secs, callee, fingerprint, _params(code))
    site.qualname = func.__qualname__
    site.code = code
    site.closure = bool(code.co_freevars)
    site.keep = func if hasattr(func, "__wrapped__") else None
    flags = code.co_flags
    site.is_async = bool(flags & _CO_COROUTINE)
    if flags & (_CO_GENERATOR | _CO_ASYNC_GENERATOR):
        # A generator's value is an iterator, which cannot be stored.
        site.disabled = True
        warn_once(
            ("generator", callee),
            f"devstash: {callee} is a generator function: its iterators cannot be stored, so "
            f"its calls run uncached (make it return a list to store its items)",
        )
    return site


# -------------------------------------------------------------------------------------------------
# Markers: one per `# @devstash` call in the rewritten script


def make_marker(file, line, ttl_secs, module, kind="call"):
    """The function a marked call is rewritten to call: ``marker(callee, *args, **kwargs)``.

    Each distinct callee the marker meets is its own site: a Python function by its code object
    (and name), a method by its function (its object becomes the first argument), a builtin by
    its name.
    """
    sites = {}

    def marked(func, /, *args, **kwargs):
        if type(func) is FunctionType:
            site = sites.get(id(func.__code__))
            if site is None or site.qualname != func.__qualname__:
                site = _function_site_for(sites, func, kind, module, file, line, ttl_secs)
            return site.call_function(func, args, kwargs)
        return _marked_other(sites, marked, func, args, kwargs, kind, module, file, line, ttl_secs)

    marked.__devstash_marker__ = True
    return marked


# id -> code object of the @stash wrappers: a marked call of a stashed function is not stored
# twice (by identity: the code objects are kept alive here).
_STASH_WRAPPERS = {}


def _function_site_for(sites, func, kind, module, file, line, ttl_secs):
    code = func.__code__
    key = id(code)
    site = sites.get(key)
    if site is not None and site.qualname != func.__qualname__:
        # Another function sharing this code (a functools.wraps decorator's wrapper): by name.
        key = (key, func.__qualname__, getattr(func, "__module__", None))
        site = sites.get(key)
    if site is None:
        site = function_site(func, kind, module, file, line, ttl_secs)
        if id(code) in _STASH_WRAPPERS:
            site.disabled = True
        sites[key] = site
    return site


def _marked_other(sites, marked, func, args, kwargs, kind, module, file, line, ttl_secs):
    t = type(func)
    if t is MethodType:
        f = func.__func__
        owner = func.__self__
        if type(f) is FunctionType:
            key = ("method", id(f.__code__), f.__qualname__)
            site = sites.get(key)
            if site is None:
                site = function_site(f, kind, module, file, line, ttl_secs)
                if id(f.__code__) in _STASH_WRAPPERS:
                    site.disabled = True
                sites[key] = site
            # A bound method is its function called with its object first.
            return site.call_function(f, (owner, *args), kwargs)
        return marked(f, owner, *args, **kwargs)
    functools = sys.modules.get("functools")
    if functools is not None and t is functools.partial:
        return marked(func.func, *func.args, *args, **{**func.keywords, **kwargs})
    if isinstance(func, type):
        key = ("class", id(func))
        site = sites.get(key)
        if site is None:
            callee = f"{module_name(func.__module__)}.{func.__qualname__}"
            site = Site(kind, module, file, line, ttl_secs, callee, lambda: class_fingerprint(func))
            site.keep = func
            sites[key] = site
        return site.call(func, args, kwargs, args)
    owner = getattr(func, "__self__", None)
    bound = owner is not None and not isinstance(owner, ModuleType)
    if t is BuiltinFunctionType or getattr(t, "__module__", None) == "builtins":
        name = getattr(func, "__name__", None) or "?"
        if bound:
            key = ("bound", type(owner), name)
            callee = f"{_type_name(type(owner))}.{name}"
        else:
            objclass = getattr(func, "__objclass__", None)
            mod = getattr(func, "__module__", None) or getattr(owner, "__name__", None)
            qual = getattr(func, "__qualname__", name)
            callee = f"{_type_name(objclass)}.{name}" if objclass else f"{mod or 'builtins'}.{qual}"
            key = ("builtin", callee)
        site = sites.get(key)
        if site is None:
            top = callee.rpartition(".")[0]
            fingerprint = (lambda: library_fingerprint(top))
            site = Site(kind, module, file, line, ttl_secs, callee, fingerprint)
            sites[key] = site
        return site.call(func, args, kwargs, (owner, *args) if bound else args)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    mod = getattr(func, "__module__", None)
    if isinstance(name, str) and isinstance(mod, str):
        # A named callable of another type (functools.lru_cache's wrapper, a numpy ufunc).
        key = ("named", t, mod, name)
        site = sites.get(key)
        if site is None:
            callee = f"{module_name(mod)}.{name}"
            site = Site(kind, module, file, line, ttl_secs, callee, _named_fingerprint(func, mod))
            sites[key] = site
        if bound:
            return site.call(func, args, kwargs, (owner, *args))
        return site.call(func, args, kwargs, args)
    if not callable(func):
        raise TypeError(f"'{t.__name__}' object is not callable")
    # An object with __call__: keyed by its class, the object itself counts as an argument.
    key = ("instance", t)
    site = sites.get(key)
    if site is None:
        callee = f"{module_name(t.__module__)}.{t.__qualname__}.__call__"
        method = getattr(t, "__call__", None)
        if type(method) is FunctionType:
            params = ("self",) + _params(method.__code__)[1:]
            fp = (lambda: code_fingerprint(method))
        else:
            params = ("self",)
            fp = (lambda: library_fingerprint(t.__module__))
        site = Site(kind, module, file, line, ttl_secs, callee, fp, params)
        sites[key] = site
    return site.call(func, args, kwargs, (func, *args))


def _named_fingerprint(func, mod):
    def fingerprint():
        inner = getattr(func, "__wrapped__", None)
        if type(inner) is FunctionType:
            return _wrapped_fingerprint(func, code_fingerprint(inner))
        code = getattr(func, "__code__", None)
        if type(code) is CodeType:
            if not is_library_file(code.co_filename):
                return _key._code_digest_hex(code)
        return library_fingerprint(mod)

    return fingerprint


# -------------------------------------------------------------------------------------------------
# @stash


def stash_function(func, ttl_secs, where):
    """The wrapper `@devstash.stash` puts around a definition; `where` is the (file, line,
    module) of the decorator, for a callee that is not a Python function."""
    import functools

    if type(func) is not FunctionType:
        file, line, module = where
        marker = make_marker(file, line, ttl_secs, module, kind="fn")

        def wrapper(*args, **kwargs):
            return marker(func, *args, **kwargs)

    else:
        site = function_site(func, "fn", None, None, None, ttl_secs)
        call_function = site.call_function
        if site.is_async:

            async def wrapper(*args, **kwargs):
                return await call_function(func, args, kwargs)

        else:

            def wrapper(*args, **kwargs):
                return call_function(func, args, kwargs)

    _STASH_WRAPPERS[id(wrapper.__code__)] = wrapper.__code__
    try:
        functools.update_wrapper(wrapper, func)
    except (AttributeError, TypeError):  # a callable without a name or a docstring
        pass
    wrapper.__devstash_stash__ = True
    return wrapper
