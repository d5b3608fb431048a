"""The canonical encoding of a call's arguments, and `Secret`.

The runner hashes these bytes into the key of a stored value, so they must be canonical: equal
arguments give equal bytes, in every run, and different arguments give different bytes. Pickle
is not enough for that (a dict pickles in insertion order, a set in hash order, and ``1``,
``1.0`` and ``True`` compare equal but may give different results), so every value is written
as a one-byte tag and a self-delimiting payload::

    call      = 'A' varint(len(args)) value* varint(len(kwargs)) (name value)*  (names sorted)
                [ 'X' varint(n) (name value)* cells ]   (defaults the call used, closure cells)
    name      = varint(len) utf-8
    None 00 | False 01 | True 02 | int 03 varint(n) n bytes (signed, little endian, shortest)
    float 04 8 bytes (the IEEE bits: -0.0 and 0.0 differ, every NaN is one NaN)
    complex 05 16 bytes | str 06 len utf-8 | bytes 07 len | bytearray 08 len
    list 09 count value* | tuple 0a count value* | dict 0b count (key value)* sorted by key bytes
    set 0c count value* sorted | frozenset 0d count value* sorted
    ...then numpy arrays, pandas frames, enums, dates, objects, functions (see `_T_*` below)

Lengths and counts are LEB128 varints. Every payload is self-delimiting, so no two different
sequences of values share a byte stream, and a dict's entries can be sorted by their bytes
without regard to insertion order.

A value that cannot be keyed honestly raises `Unkeyable` (a `TypeError`), never a shared key.
Numpy and pandas are never imported here: their types are recognized once the program has
imported them.
"""

import hashlib
import struct
import sys
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

# Tags. New tags are only ever added; changing the meaning of one requires a new KEY_VERSION.
_T_NONE = b"\x00"
_T_FALSE = b"\x01"
_T_TRUE = b"\x02"
_T_INT = b"\x03"
_T_FLOAT = b"\x04"
_T_COMPLEX = b"\x05"
_T_STR = b"\x06"
_T_BYTES = b"\x07"
_T_BYTEARRAY = b"\x08"
_T_LIST = b"\x09"
_T_TUPLE = b"\x0a"
_T_DICT = b"\x0b"
_T_SET = b"\x0c"
_T_FROZENSET = b"\x0d"
_T_ELLIPSIS = b"\x0e"
_T_NOTIMPLEMENTED = b"\x0f"
_T_RANGE = b"\x10"
_T_SLICE = b"\x11"
_T_MEMORYVIEW = b"\x12"
_T_TYPE = b"\x13"
_T_MODULE = b"\x14"
_T_FUNCTION = b"\x15"
_T_BUILTIN = b"\x16"
_T_METHOD = b"\x17"
_T_FUNC_BACKREF = b"\x18"
_T_ENUM = b"\x19"
_T_OBJECT = b"\x1a"
_T_SUBCLASS = b"\x1b"
_T_ORDEREDDICT = b"\x1c"
_T_PICKLED = b"\x1d"
_T_DATETIME = b"\x1e"
_T_DATE = b"\x1f"
_T_TIME = b"\x20"
_T_TIMEDELTA = b"\x21"
_T_TIMEZONE = b"\x22"
_T_DECIMAL = b"\x23"
_T_FRACTION = b"\x24"
_T_PATH = b"\x25"
_T_NDARRAY = b"\x26"
_T_NDARRAY_OBJECTS = b"\x27"
_T_NPSCALAR = b"\x28"
_T_DATAFRAME = b"\x29"
_T_SERIES = b"\x2a"
_T_INDEX = b"\x2b"
_T_PANDAS_VALUES = b"\x2c"
_T_SECRET = b"\x2d"
_T_PARTIAL = b"\x2e"
_T_CELL_EMPTY = b"\x2f"
_T_CODE = b"\x30"
_T_UUID = b"\x31"

_CALL = b"A"
_EXTRAS = b"X"

KEY_VERSION = 1
PICKLE_PROTOCOL = 5
#: What the site's ``types`` carries: everything besides the argument bytes that decides how a
#: stored value reads back.
TYPES = f"py-key-{KEY_VERSION};pickle-{PICKLE_PROTOCOL}"

# Containers nested deeper than this are checked for cycles (cheaply skipped above it: a cycle
# nests without end, so it always gets this deep).
_DEEP = 40
# Arrays up to this many bytes go into the key whole; larger ones by a digest.
_INLINE_ARRAY_BYTES = 1024

_pack_d = struct.Struct("<d").pack
_pack_dd = struct.Struct("<dd").pack
_NAN = _pack_d(float("nan"))


class Unkeyable(TypeError):
    """A value that cannot be turned into key bytes: ``obj`` is the value, ``why`` a phrase
    saying why (the bridge turns it into a TypeError naming the argument)."""

    def __init__(self, obj, why):
        super().__init__(why)
        self.obj = obj
        self.why = why


# -------------------------------------------------------------------------------------------------
# Hooks the bridge replaces when a runner is there: the runner's blake3 (fast, native) for large
# buffers, and its keyed hash for secrets.


def _local_digest(data):
    return hashlib.blake2b(data, digest_size=32).digest()


digest = _local_digest
secret_hash = None  # set by the bridge; None: no runner, so no key is ever made from a secret

# -------------------------------------------------------------------------------------------------
# Lengths


def _varint_slow(n):
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


_L = [bytes((i,)) for i in range(128)]


def _len(n):
    return _L[n] if n < 128 else _varint_slow(n)


# -------------------------------------------------------------------------------------------------
# Scalars


def _int_bytes_slow(x):
    n = (x.bit_length() + 8) >> 3  # room for the sign bit
    return _T_INT + _len(n) + x.to_bytes(n, "little", signed=True)


# Tag, size and value packed in one go for the sizes struct has: the bytes equal
# `_int_bytes_slow`'s (a size-n int from the formula above always fits n signed bytes), with
# one allocation instead of four (allocations dominate the cost of small encodings).
_TAG_INT = _T_INT[0]
_INT_PACKS = [None] * 9
for _n, _c in ((1, "b"), (2, "h"), (4, "i"), (8, "q")):
    _INT_PACKS[_n] = struct.Struct("<BB" + _c).pack


def _int_bytes(x):
    n = (x.bit_length() + 8) >> 3
    if n < 9:
        pack = _INT_PACKS[n]
        if pack is not None:
            return pack(_TAG_INT, n, x)
    return _int_bytes_slow(x)


_SMALL_INTS = {i: _int_bytes_slow(i) for i in range(-256, 1025)}


def _enc_int(x, d):
    b = _SMALL_INTS.get(x)
    return b if b is not None else _int_bytes(x)


_pack_float = struct.Struct("<Bd").pack
_TAG_FLOAT = _T_FLOAT[0]
_FLOAT_NAN = _T_FLOAT + _NAN


def _enc_float(x, d):
    return _pack_float(_TAG_FLOAT, x) if x == x else _FLOAT_NAN


def _enc_complex(x, d):
    r, i = x.real, x.imag
    return _T_COMPLEX + (_pack_d(r) if r == r else _NAN) + (_pack_d(i) if i == i else _NAN)


def _utf8(s):
    try:
        return s.encode()
    except UnicodeEncodeError:  # lone surrogates are valid in a str
        return s.encode("utf-8", "surrogatepass")


# Tag and length of short strs and bytes, one piece each (one concatenation per value, not two).
_STR_HEADS = [_T_STR + _L[n] for n in range(128)]
_BYTES_HEADS = [_T_BYTES + _L[n] for n in range(128)]


def _enc_str(x, d):
    try:
        b = x.encode()
    except UnicodeEncodeError:  # lone surrogates are valid in a str
        b = x.encode("utf-8", "surrogatepass")
    n = len(b)
    return (_STR_HEADS[n] if n < 128 else _T_STR + _varint_slow(n)) + b


def _enc_bytes(x, d):
    n = len(x)
    return (_BYTES_HEADS[n] if n < 128 else _T_BYTES + _varint_slow(n)) + x


def _enc_bytearray(x, d):
    return _T_BYTEARRAY + _len(len(x)) + bytes(x)


def _enc_none(x, d):
    return _T_NONE


def _enc_bool(x, d):
    return _T_TRUE if x else _T_FALSE


def _name(s):
    b = _utf8(s)
    return _len(len(b)) + b


# -------------------------------------------------------------------------------------------------
# Cycle guard: only containers nested deeper than _DEEP are tracked, so shallow arguments (the
# usual ones) pay nothing for it.

_active = set()


def _enter(x):
    i = id(x)
    if i in _active:
        raise Unkeyable(
            x,
            "contains itself (a self-referential structure has no finite key)",
        )
    _active.add(i)
    return i


# -------------------------------------------------------------------------------------------------
# Containers


def _sequence(tag):
    """The encoder of a sequence type whose encoding starts with `tag`."""

    def enc(x, d):
        d += 1
        if d > _DEEP + 1:
            i = _enter(x)
            try:
                return tag + _len(len(x)) + b"".join([_enc(v, d) for v in x])
            finally:
                _active.discard(i)
        return tag + _len(len(x)) + b"".join([_enc(v, d) for v in x])

    return enc


_enc_list = _sequence(_T_LIST)
_enc_tuple = _sequence(_T_TUPLE)


def _dict_body(x, d):
    # Keys are distinct and every encoding is self-delimiting, so sorting "key+value" strings
    # sorts by key bytes.
    return _len(len(x)) + b"".join(sorted([_enc(k, d) + _enc(v, d) for k, v in x.items()]))


def _enc_dict(x, d):
    if d > _DEEP:
        i = _enter(x)
        try:
            return _T_DICT + _dict_body(x, d + 1)
        finally:
            _active.discard(i)
    return _T_DICT + _dict_body(x, d + 1)


def _set_body(x, d):
    return _len(len(x)) + b"".join(sorted([_enc(v, d) for v in x]))


def _enc_set(x, d):
    if d > _DEEP:
        i = _enter(x)
        try:
            return _T_SET + _set_body(x, d + 1)
        finally:
            _active.discard(i)
    return _T_SET + _set_body(x, d + 1)


def _enc_frozenset(x, d):
    return _T_FROZENSET + _set_body(x, d + 1)


def _enc_range(x, d):
    return _T_RANGE + _enc_int(x.start, d) + _enc_int(x.stop, d) + _enc_int(x.step, d)


def _enc_slice(x, d):
    return _T_SLICE + _enc(x.start, d + 1) + _enc(x.stop, d + 1) + _enc(x.step, d + 1)


def _enc_memoryview(x, d):
    data = x.tobytes()
    return (
        _T_MEMORYVIEW + _name(x.format) + _enc(tuple(x.shape or ()), d) + _len(len(data)) + data
    )


def _enc_ellipsis(x, d):
    return _T_ELLIPSIS


def _enc_notimplemented(x, d):
    return _T_NOTIMPLEMENTED


def _enc_module(x, d):
    return _T_MODULE + _name(x.__name__)


def _type_name(t):
    module = getattr(t, "__module__", None) or "?"
    return f"{module}.{getattr(t, '__qualname__', None) or t.__name__}"


def _enc_type(x, d):
    return _T_TYPE + _name(_type_name(x))


# -------------------------------------------------------------------------------------------------
# Functions passed as arguments, or held in closure cells: by name, code and captured values.

_funcs_active = []  # functions being encoded, outermost first, for recursive closures
code_fingerprint = None  # set by the bridge: code object -> fingerprint text


def _enc_function(f, d):
    for depth, g in enumerate(_funcs_active):
        if g is f:  # a recursive closure refers to itself
            return _T_FUNC_BACKREF + _len(depth)
    _funcs_active.append(f)
    try:
        parts = [
            _T_FUNCTION,
            _name(f"{getattr(f, '__module__', None)}.{f.__qualname__}"),
            _name(code_fingerprint(f) if code_fingerprint else _code_digest_hex(f.__code__)),
            _enc(f.__defaults__, d + 1),
            _enc(f.__kwdefaults__, d + 1),
            closure_bytes(f, d + 1),
        ]
    finally:
        _funcs_active.pop()
    return b"".join(parts)


def closure_bytes(f, d=0):
    """The captured values of a function's closure, in cell order."""
    cells = f.__closure__
    if not cells:
        return _L[0]
    parts = [_len(len(cells))]
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not yet filled
            parts.append(_T_CELL_EMPTY)
            continue
        parts.append(_enc(value, d + 1))
    return b"".join(parts)


def _enc_builtin(f, d):
    owner = f.__self__
    if owner is None or isinstance(owner, ModuleType):
        module = getattr(f, "__module__", None) or getattr(owner, "__name__", None) or "builtins"
        return _T_BUILTIN + _name(f"{module}.{f.__qualname__}") + _T_NONE
    # A bound builtin method ([].append): its object is part of what it does.
    return _T_BUILTIN + _name(f"{_type_name(type(owner))}.{f.__name__}") + _enc(owner, d + 1)


def _enc_method(m, d):
    return _T_METHOD + _enc(m.__func__, d + 1) + _enc(m.__self__, d + 1)


def _code_digest(code, h):
    """Feeds what a code object does (not where it sits in its file) into `h`."""
    h.update(code.co_code)
    h.update(
        _enc(
            (
                code.co_argcount,
                code.co_posonlyargcount,
                code.co_kwonlyargcount,
                code.co_flags,
                code.co_names,
                code.co_varnames,
                code.co_freevars,
                code.co_cellvars,
            ),
            0,
        )
    )
    for c in code.co_consts:
        if type(c) is type(code):
            h.update(_T_CODE)
            _code_digest(c, h)
        else:
            h.update(_enc(c, 0))


def _code_digest_hex(code):
    h = hashlib.blake2b(digest_size=32)
    _code_digest(code, h)
    return h.hexdigest()


# -------------------------------------------------------------------------------------------------
# Dispatch

_ENC = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    list: _enc_list,
    tuple: _enc_tuple,
    dict: _enc_dict,
    set: _enc_set,
    frozenset: _enc_frozenset,
    range: _enc_range,
    slice: _enc_slice,
    memoryview: _enc_memoryview,
    type(...): _enc_ellipsis,
    type(NotImplemented): _enc_notimplemented,
    ModuleType: _enc_module,
    type: _enc_type,
    FunctionType: _enc_function,
    BuiltinFunctionType: _enc_builtin,
    MethodType: _enc_method,
}


def _enc(x, d):
    f = _ENC.get(type(x))
    if f is not None:
        return f(x, d)
    return _resolve(type(x))(x, d)


def _resolve(t):
    """The encoder of a type met for the first time; remembered when it depends on the type
    alone."""
    f = _encoder_for(t)
    _ENC[t] = f
    return f


def _module_of(t):
    return (getattr(t, "__module__", None) or "").partition(".")[0]


def _encoder_for(t):
    if isinstance(t, type) and issubclass(t, type):  # a metaclass: its instances are classes
        return _enc_type
    top = _module_of(t)
    if t is Secret:
        return _enc_secret
    enum = sys.modules.get("enum")
    if enum is not None and issubclass(t, enum.Enum):
        return _enc_enum
    if top == "numpy":
        np = sys.modules.get("numpy")
        if np is not None:
            if t is np.ndarray:
                return _enc_ndarray
            if issubclass(t, np.generic):
                return _enc_npscalar
    if top == "pandas":
        pd = sys.modules.get("pandas")
        if pd is not None:
            if issubclass(t, pd.DataFrame):
                return _enc_dataframe
            if issubclass(t, pd.Series):
                return _enc_series
            if issubclass(t, pd.Index):
                return _enc_index
    if top == "datetime":
        import datetime as dt

        if t is dt.datetime:
            return _enc_datetime
        if t is dt.date:
            return _enc_date
        if t is dt.time:
            return _enc_time
        if t is dt.timedelta:
            return _enc_timedelta
        if t is dt.timezone:
            return _enc_timezone
    if top in ("decimal", "_decimal", "_pydecimal"):
        decimal = sys.modules.get("decimal")
        if decimal is not None and t is decimal.Decimal:
            return _enc_decimal
    if top == "fractions":
        fractions = sys.modules.get("fractions")
        if fractions is not None and t is fractions.Fraction:
            return _enc_fraction
    if top == "pathlib":
        pathlib = sys.modules.get("pathlib")
        if pathlib is not None and issubclass(t, pathlib.PurePath):
            return _enc_path
    if top == "uuid":
        uuid = sys.modules.get("uuid")
        if uuid is not None and t is uuid.UUID:
            return _enc_uuid
    if top == "functools":
        functools = sys.modules.get("functools")
        if functools is not None and t is functools.partial:
            return _enc_partial
    if top == "collections":
        collections = sys.modules.get("collections")
        if collections is not None and t is collections.OrderedDict:
            return _enc_ordereddict
    if top == "builtins" and t.__name__ in _DESCRIPTORS:
        return _enc_descriptor
    for base, enc in _SUBCLASSABLE:
        if issubclass(t, base):
            return _subclass_encoder(base, enc)
    if _plain_reduction(t):
        return _enc_object
    return _enc_pickled


# -------------------------------------------------------------------------------------------------
# Library types by their exact value


def _enc_enum(x, d):
    name = x._name_
    body = _name(name) if name is not None else _enc(x._value_, d + 1)
    return _T_ENUM + _name(_type_name(type(x))) + body


def _enc_datetime(x, d):
    return (
        _T_DATETIME
        + _enc(
            (x.year, x.month, x.day, x.hour, x.minute, x.second, x.microsecond, x.fold),
            d + 1,
        )
        + _enc(x.tzinfo, d + 1)
    )


def _enc_date(x, d):
    return _T_DATE + _enc((x.year, x.month, x.day), d + 1)


def _enc_time(x, d):
    return (
        _T_TIME
        + _enc((x.hour, x.minute, x.second, x.microsecond, x.fold), d + 1)
        + _enc(x.tzinfo, d + 1)
    )


def _enc_timedelta(x, d):
    return _T_TIMEDELTA + _enc((x.days, x.seconds, x.microseconds), d + 1)


def _enc_timezone(x, d):
    offset = x.utcoffset(None)
    return _T_TIMEZONE + _enc_timedelta(offset, d) + _enc(x.tzname(None), d + 1)


def _enc_decimal(x, d):
    # str keeps everything a Decimal holds: sign, digits, exponent, and the kind of NaN.
    return _T_DECIMAL + _name(str(x))


def _enc_fraction(x, d):
    return _T_FRACTION + _enc_int(x.numerator, d) + _enc_int(x.denominator, d)


def _enc_path(x, d):
    return _T_PATH + _name(_type_name(type(x))) + _name(str(x))


def _enc_uuid(x, d):
    return _T_UUID + x.bytes


def _enc_partial(x, d):
    return (
        _T_PARTIAL
        + _enc(x.func, d + 1)
        + _enc(x.args, d + 1)
        + _enc(x.keywords, d + 1)
        + _enc(getattr(x, "__dict__", None) or None, d + 1)
    )


def _enc_ordereddict(x, d):
    # An OrderedDict's order is part of its value (two with other orders are not equal).
    d += 1
    return (
        _T_ORDEREDDICT
        + _len(len(x))
        + b"".join([_enc(k, d) + _enc(v, d) for k, v in x.items()])
    )


def _enc_descriptor(x, d):
    owner = getattr(x, "__self__", None)
    objclass = getattr(x, "__objclass__", None)
    qual = getattr(x, "__qualname__", None) or getattr(x, "__name__", "?")
    if objclass is not None:
        qual = f"{_type_name(objclass)}.{getattr(x, '__name__', '?')}"
    body = _T_NONE if owner is None or isinstance(owner, ModuleType) else _enc(owner, d + 1)
    return _T_BUILTIN + _name(qual) + body


# -------------------------------------------------------------------------------------------------
# numpy and pandas (only when the program imported them: never imported here)


def _array_digest(data):
    # `data` is C-contiguous bytes or a buffer of them.
    n = len(data)
    if n <= _INLINE_ARRAY_BYTES:
        return b"\x00" + _len(n) + bytes(data)
    return b"\x01" + digest(data)


def _dtype_text(dt):
    return dt.str if dt.fields is None and dt.subdtype is None else repr(dt.descr)


def _enc_ndarray(x, d):
    np = sys.modules["numpy"]
    head = _T_NDARRAY + _name(_dtype_text(x.dtype)) + _enc(tuple(x.shape), d + 1)
    if x.dtype.hasobject:
        # Object arrays hold pointers: key their elements instead.
        return _T_NDARRAY_OBJECTS + head + _enc(x.ravel().tolist(), d + 1)
    a = x if x.flags.c_contiguous else np.ascontiguousarray(x)
    try:
        buf = memoryview(a).cast("B")
    except (TypeError, ValueError):  # dtypes the buffer protocol does not speak (datetime64)
        buf = a.tobytes()
    return head + _array_digest(buf)


def _enc_npscalar(x, d):
    if x.dtype.hasobject:
        return _T_NPSCALAR + _name("O") + _enc(x.item(), d + 1)
    return _T_NPSCALAR + _name(_dtype_text(x.dtype)) + _name_bytes(x.tobytes())


def _name_bytes(b):
    return _len(len(b)) + b


def _pandas_values(obj, d):
    """The values of a Series or an Index: exact bytes for numpy dtypes, pandas' per-row hash
    (plus the kinds of value) for the rest, element by element when the kinds are mixed."""
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = obj.dtype
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        return _T_PANDAS_VALUES + b"\x00" + _enc_ndarray(obj.to_numpy(), d + 1)
    kind = pd.api.types.infer_dtype(obj, skipna=False)
    head = _T_PANDAS_VALUES + b"\x01" + _name(str(dtype)) + _name(kind)
    if kind.startswith("mixed") or kind in ("unknown-array", "complex"):
        # pandas hashes an object column by each value's str: 1 and "1" would collide.
        return head + _enc(list(obj), d + 1)
    hashes = pd.util.hash_pandas_object(obj, index=False).to_numpy()
    hashes = memoryview(np.ascontiguousarray(hashes)).cast("B")
    return head + _len(len(hashes)) + _array_digest(hashes)


def _enc_index(x, d):
    pd = sys.modules["pandas"]
    head = _T_INDEX + _name(_type_name(type(x))) + _enc(list(x.names), d + 1)
    if type(x) is pd.RangeIndex:
        return head + _enc_range(range(x.start, x.stop, x.step), d)
    if isinstance(x, pd.MultiIndex):
        return head + _pandas_values(pd.Series(pd.util.hash_pandas_object(x, index=False)), d)
    return head + _pandas_values(x, d)


def _enc_series(x, d):
    return (
        _T_SERIES
        + _name(_type_name(type(x)))
        + _enc(x.name, d + 1)
        + _pandas_values(x, d)
        + _enc_index(x.index, d)
    )


def _enc_dataframe(x, d):
    parts = [
        _T_DATAFRAME,
        _name(_type_name(type(x))),
        _enc_index(x.columns, d),
        _enc_index(x.index, d),
        _len(x.shape[1]),
    ]
    for i in range(x.shape[1]):
        parts.append(_pandas_values(x.iloc[:, i], d))
    return b"".join(parts)


# -------------------------------------------------------------------------------------------------
# Objects

_DESCRIPTORS = (
    "method-wrapper",
    "method_descriptor",
    "wrapper_descriptor",
    "classmethod_descriptor",
)

_SUBCLASSABLE = [
    (int, _enc_int),
    (float, _enc_float),
    (complex, _enc_complex),
    (str, _enc_str),
    (bytes, _enc_bytes),
    (bytearray, _enc_bytearray),
    (tuple, _enc_tuple),
    (list, _enc_list),
    (dict, _enc_dict),
    (set, _enc_set),
    (frozenset, _enc_frozenset),
]


def _subclass_encoder(base, enc):
    """A subclass of a builtin (a namedtuple, a Counter, an IntFlag-less str subclass): its type,
    its value as the builtin, and whatever attributes its instances carry."""

    def encode(x, d):
        state = getattr(x, "__dict__", None)
        extra = _enc(state, d + 1) if state else _T_NONE
        default_factory = getattr(x, "default_factory", None) if isinstance(x, dict) else None
        if default_factory is not None:
            extra += _enc(default_factory, d + 1)
        return _T_SUBCLASS + _name(_type_name(type(x))) + enc(x, d) + extra

    return encode


def _plain_reduction(t):
    """Whether instances of `t` pickle by the default protocol (class + state), so that they
    can be keyed by their class and a canonical encoding of their state."""
    import copyreg

    if t in copyreg.dispatch_table:
        return False
    return (
        getattr(t, "__reduce_ex__", None) is object.__reduce_ex__
        and getattr(t, "__reduce__", None) is object.__reduce__
    )


def _enc_object(x, d):
    try:
        rv = x.__reduce_ex__(PICKLE_PROTOCOL)
    except Exception as e:
        raise Unkeyable(x, f"cannot be pickled ({type(e).__name__}: {e})") from None
    if isinstance(rv, str):  # a module-level singleton, pickled by name
        return _T_OBJECT + _name(_type_name(type(x))) + _name(rv)
    if d > _DEEP:
        i = _enter(x)
        try:
            return _object_body(x, rv, d + 1)
        finally:
            _active.discard(i)
    return _object_body(x, rv, d + 1)


def _object_body(x, rv, d):
    # (constructor, args, state, listitems, dictitems): the default reduction's constructor is
    # copyreg's, always the same, and args holds the class first.
    args = rv[1] if len(rv) > 1 else ()
    state = rv[2] if len(rv) > 2 else None
    listitems = rv[3] if len(rv) > 3 else None
    dictitems = rv[4] if len(rv) > 4 else None
    return b"".join(
        [
            _T_OBJECT,
            _name(_type_name(type(x))),
            _enc(tuple(args[1:]) if args and args[0] is type(x) else tuple(args), d),
            _enc(state, d),
            _enc(list(listitems) if listitems is not None else None, d),
            _enc(dict(dictitems) if dictitems is not None else None, d),
        ]
    )


_pickler = None


def _make_pickler():
    import pickle

    class _KeyPickler(pickle.Pickler):
        # A Secret inside a pickled argument is keyed by its hash, never pickled in clear.
        def persistent_id(self, obj):
            if type(obj) is Secret:
                return ("devstash.Secret", obj._key_hash())
            return None

    return _KeyPickler


def _enc_pickled(x, d):
    import io

    global _pickler
    if _pickler is None:
        _pickler = _make_pickler()
    buf = io.BytesIO()
    try:
        _pickler(buf, protocol=PICKLE_PROTOCOL).dump(x)
    except Exception as e:
        raise Unkeyable(x, f"cannot be pickled ({type(e).__name__}: {e})") from None
    data = buf.getvalue()
    return _T_PICKLED + _name(_type_name(type(x))) + _len(len(data)) + data


# -------------------------------------------------------------------------------------------------
# Secrets


class Secret:
    """A secret value (an API key, a password): in a key it counts by a keyed hash that the
    runner computes under a key of its user (which no guest can read), never by its value, and it
    shows as ``Secret(<redacted>)``, so it reaches no preview, entry, tape or report.

    Make one with ``devstash.secret(value)``; read it with ``.expose()``.
    """

    __slots__ = ("_value", "_hash")

    def __init__(self, value):
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        if not isinstance(value, (str, bytes)):
            raise TypeError(
                f"devstash.secret() takes a str or bytes, not {type(value).__name__}"
            )
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_hash", None)

    def expose(self):
        """The secret itself, to use it (never to print or store it)."""
        return self._value

    def _key_hash(self):
        h = self._hash
        if h is None:
            v = self._value
            data = (b"s" + _utf8(v)) if isinstance(v, str) else (b"b" + v)
            if secret_hash is None:
                raise Unkeyable(self, "cannot be hashed: no runner is there to hash secrets")
            try:
                h = secret_hash(data)
            except Unkeyable as e:
                raise Unkeyable(self, e.why) from None
            object.__setattr__(self, "_hash", h)
        return h

    def __repr__(self):
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __format__(self, spec):
        return "Secret(<redacted>)"

    def __eq__(self, other):
        if type(other) is not Secret:
            return NotImplemented
        import hmac

        a, b = self._value, other._value
        if type(a) is not type(b):
            return False
        if isinstance(a, str):
            a, b = _utf8(a), _utf8(b)
        return hmac.compare_digest(a, b)

    def __hash__(self):
        return hash((Secret, self._value))

    def __setattr__(self, name, value):
        raise AttributeError("a devstash.Secret is immutable")

    def __reduce__(self):
        raise TypeError(
            "a devstash.Secret is never pickled, so that it is never stored: return the "
            "result that depends on it, not the secret itself"
        )

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _enc_secret(x, d):
    return _T_SECRET + x._key_hash()


# -------------------------------------------------------------------------------------------------
# The call


def encode_call(args, kwargs):
    """The canonical bytes of a call's positional and keyword arguments.

    Raises `Unkeyable` for a value that cannot be keyed.
    """
    if not kwargs and len(args) == 1:  # the common case: one argument, no keywords
        a = args[0]
        t = type(a)
        if t is int:
            b = _CALL_SMALL_INT.get(a)
            if b is not None:
                return b
        elif t is str and a.isascii():
            n = len(a)
            if n < 128:
                return _A1_STR + _L[n] + a.encode() + _L0
        f = _ENC.get(t)
        return _A1 + (f(a, 1) if f is not None else _enc(a, 1)) + _L0
    return _join_call([_CALL, _len(len(args))], args, kwargs)


def _join_call(parts, args, kwargs):
    # `parts` holds what comes before the arguments: 'A' and their count (after a request's
    # head, for `call_request`).
    for a in args:
        f = _ENC.get(type(a))
        parts.append(f(a, 1) if f is not None else _enc(a, 1))
    if not kwargs:
        parts.append(_L0)
        return b"".join(parts)
    parts.append(_len(len(kwargs)))
    for name in sorted(kwargs) if len(kwargs) > 1 else kwargs:
        b = _KW_NAMES.get(name)
        if b is None:
            b = _KW_NAMES[name] = _name(name)
        parts.append(b)
        v = kwargs[name]
        f = _ENC.get(type(v))
        parts.append(f(v, 1) if f is not None else _enc(v, 1))
    return b"".join(parts)


#: The length of the head `call_request` takes: a ``G`` request's op, handle and flags.
REQUEST_HEAD = 9

# A one-argument call's whole request in one struct.pack, for an int of a size struct has and
# for a float (the commonest arguments): head, 'A' 1 and the tag, the value, 0 keywords.
_REQ_INT_PACKS = [None] * 9
for _n, _c in ((1, "b"), (2, "h"), (4, "i"), (8, "q")):
    _REQ_INT_PACKS[_n] = struct.Struct(f"<{REQUEST_HEAD}s3sB{_c}B").pack
_req_float_pack = struct.Struct(f"<{REQUEST_HEAD}s3sdB").pack


def call_request(head, args, kwargs):
    """``head + encode_call(args, kwargs)`` (the same bytes), made in one piece: `head` is
    the `REQUEST_HEAD` bytes of a ``G`` request (op, handle, flags), and the whole request is
    returned. Every allocation counts on a hit's path, so the commonest calls (one int, float or
    str, no keywords) are packed straight into the request.

    Raises `Unkeyable` for a value that cannot be keyed.
    """
    if not kwargs and len(args) == 1:
        a = args[0]
        t = type(a)
        if t is int:
            n = (a.bit_length() + 8) >> 3
            if n < 9:
                pack = _REQ_INT_PACKS[n]
                if pack is not None:
                    return pack(head, _A1_INT, n, a, 0)
        elif t is str:
            try:
                b = a.encode()
            except UnicodeEncodeError:  # lone surrogates: the general path
                b = None
            if b is not None:
                n = len(b)
                if n < 128:
                    return b"".join((head, _A1_STR, _L[n], b, _L0))
        elif t is float:
            if a == a:
                return _req_float_pack(head, _A1_FLOAT, a, 0)
        f = _ENC.get(t)
        return b"".join((head, _A1, f(a, 1) if f is not None else _enc(a, 1), _L0))
    return _join_call([head, _CALL, _len(len(args))], args, kwargs)


_A1 = _CALL + _L[1]
_A1_STR = _A1 + _T_STR
_A1_INT = _A1 + _T_INT
_A1_FLOAT = _A1 + _T_FLOAT
_L0 = _L[0]
_CALL_SMALL_INT = {i: _A1 + b + _L0 for i, b in _SMALL_INTS.items()}
_KW_NAMES = {}  # keyword names met so far -> their bytes


def extras(named):
    """The bytes that follow a call's arguments: a list of (name, value) pairs the result also
    depends on (closure cells, defaults the call used)."""
    return _EXTRAS + _len(len(named)) + b"".join([_name(n) + _enc(v, 1) for n, v in named])


def encode(value):
    """The canonical bytes of one value (for tests and fingerprints)."""
    try:
        return _enc(value, 0)
    finally:
        _active.clear()
        del _funcs_active[:]


def reset():
    """Clears the cycle guard after an encoding raised part way."""
    _active.clear()
    del _funcs_active[:]


# -------------------------------------------------------------------------------------------------
# Saying which argument could not be keyed


def locate(root, target, path="", _seen=None):
    """The path of `target` inside `root` (``[2]['conn'].db``), or None."""
    if root is target:
        return path
    if _seen is None:
        _seen = set()
    if id(root) in _seen:
        return None
    _seen.add(id(root))
    children = ()
    if isinstance(root, (list, tuple)):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(root))
    elif isinstance(root, dict):
        children = (
            item
            for k, v in root.items()
            for item in ((f"{path}[{k!r}] (the key)", k), (f"{path}[{k!r}]", v))
        )
    elif isinstance(root, (set, frozenset)):
        children = ((f"{path}{{...}}", v) for v in root)
    else:
        named = []
        state = getattr(root, "__dict__", None)
        if isinstance(state, dict):
            named.extend(state.items())
        for klass in type(root).__mro__:
            slots = vars(klass).get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot not in ("__dict__", "__weakref__") and hasattr(root, slot):
                    named.append((slot, getattr(root, slot)))
        children = ((f"{path}.{k}", v) for k, v in named)
    for sub, child in children:
        found = locate(child, target, sub, _seen)
        if found is not None:
            return found
    return None
