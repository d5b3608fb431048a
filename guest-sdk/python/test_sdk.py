"""Tests of the pure-Python devstash SDK on native CPython: `python3 guest-sdk/python/test_sdk.py`.

A fake runner stands behind a fake ``_host`` module: it speaks the protocol (R G P F B E K S H
L) against a dict, checks every request the way the runner does (a malformed one fails the
test), and keeps a log of the ops it served.
"""

import asyncio
import dataclasses
import enum
import hashlib
import hmac
import importlib
import io
import json
import linecache
import math
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import types
import unittest
from collections import OrderedDict, namedtuple
from contextlib import redirect_stderr
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import PurePosixPath

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ beside the SDK's files


class FakeRunner:
    """The runner's side of ``host::call``, against a dict."""

    def __init__(self):
        self.sites = []
        self.clock = 1_000_000.0
        self.clear()

    def clear(self):
        self.store = {}  # key -> (value bytes, stored at, preview)
        self.tickets = {}  # ticket -> (site handle, key)
        self.next_ticket = 1
        self.ops = []
        self.logs = []
        self.corrupt_next = set()  # keys whose next lookup answers Corrupt
        self.http_routes = {}
        self.http_seen = []
        self.timing = []

    @staticmethod
    def key(desc, args):
        h = hashlib.sha256(b"devstash-key")
        for part in (desc["callee"].encode(), desc["fingerprint"].encode(),
                     desc["types"].encode(), bytes(args)):
            h.update(struct.pack("<Q", len(part)))
            h.update(part)
        return h.digest()

    def call(self, data):
        data = bytes(memoryview(data))
        assert data, "an empty request"
        op, rest = chr(data[0]), data[1:]
        self.ops.append(op)
        return getattr(self, "op_" + op)(rest)

    def op_R(self, rest):
        desc = json.loads(rest)
        assert set(desc) == {"abi", "module", "callee", "file", "line", "ttl_secs",
                             "fingerprint", "value_type", "kind", "types"}, desc
        assert desc["abi"] == 2 and desc["kind"] in ("call", "fn")
        assert isinstance(desc["line"], int) and desc["line"] >= 0
        assert desc["ttl_secs"] is None or isinstance(desc["ttl_secs"], int)
        assert not desc["callee"].startswith("http::")
        self.sites.append(desc)
        return struct.pack("<i", len(self.sites) - 1)

    def op_G(self, rest):
        handle, flags = struct.unpack_from("<Ii", rest)
        args = rest[8:]
        desc = self.sites[handle]
        key = self.key(desc, args)
        if key in self.corrupt_next and not flags & 1:
            self.corrupt_next.discard(key)
            return b"\xfc"
        found = self.store.get(key)
        if found is not None and not flags & 1:
            value, at, _ = found
            ttl = desc["ttl_secs"]
            if ttl is None or self.clock - at <= ttl:
                return b"\x00" + value
        ticket = self.next_ticket
        self.next_ticket += 1
        self.tickets[ticket] = (handle, key)
        return b"\x01" + struct.pack("<Q", ticket)

    def op_P(self, rest):
        ticket, plen = struct.unpack_from("<QI", rest)
        preview = rest[12:12 + plen]
        assert len(preview) == plen, "cut short inside the preview"
        assert len(preview) <= 200
        preview.decode("utf-8")
        value = rest[12 + plen:]
        _, key = self.tickets.pop(ticket)
        self.store[key] = (value, self.clock, preview.decode())
        return struct.pack("<i", 0)

    def op_F(self, rest):
        (ticket,) = struct.unpack("<Q", rest)
        del self.tickets[ticket]
        return b""

    def op_B(self, rest):
        (ticket,) = struct.unpack("<Q", rest)
        assert ticket in self.tickets
        self.timing.append(("B", ticket))
        return b""

    def op_E(self, rest):
        (ticket,) = struct.unpack("<Q", rest)
        assert ticket in self.tickets
        self.timing.append(("E", ticket))
        return b""

    def op_K(self, rest):
        return hashlib.sha256(rest).digest()

    def op_S(self, rest):
        return hmac.new(b"the user's secret key", rest, hashlib.sha256).digest()

    def op_L(self, rest):
        self.logs.append((rest[0], rest[1:].decode()))
        return b""

    def op_H(self, rest):
        (n,) = struct.unpack_from("<I", rest)
        spec = json.loads(rest[4:4 + n])
        body = rest[4 + n:]
        assert set(spec) == {"method", "url", "headers", "timeout_ms", "cache"}, spec
        self.http_seen.append((spec, body))
        route = self.http_routes.get(spec["url"])
        if route is None:
            head = {"error": {"kind": "NotAllowed",
                              "message": "the host is not allowed: run with --allow-net"}}
            body_out = b""
        else:
            status, headers, body_out = route
            head = {"status": status, "headers": headers}
        j = json.dumps(head).encode()
        return struct.pack("<I", len(j)) + j + body_out

    # Helpers for the tests.
    def site_named(self, callee):
        return [s for s in self.sites if s["callee"] == callee]


RUNNER = FakeRunner()
_fake_host = types.ModuleType("_host")
_fake_host.call = RUNNER.call
sys.modules["_host"] = _fake_host
sys.path.insert(0, HERE)

import devstash  # noqa: E402
from devstash import _bridge, _key, _rewrite  # noqa: E402
from devstash import http as dhttp  # noqa: E402

CALLS = []  # what test functions record (a global: a closure's cells are part of its keys)


class Custom:
    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        return (Custom, (self.v,))


class Client:
    def __init__(self, key):
        self.key = key

    def __reduce__(self):  # pickled as a whole: the secret inside still counts by its hash
        return (Client, (self.key,))


BOX = types.ModuleType("sdk_test_box")  # what rewritten scripts report through
sys.modules["sdk_test_box"] = BOX


def enc(*args, **kwargs):
    return _key.encode_call(args, kwargs)


def run_script(test, text, name="quickstart.py"):
    """Rewrites and runs a script as __main__ in this process (the runner is the fake)."""
    folder = tempfile.mkdtemp()
    test.addCleanup(lambda: [os.remove(os.path.join(folder, f)) for f in os.listdir(folder)])
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    BOX.out = []
    BOX.calls = []
    main = sys.modules["__main__"]
    saved_name = _bridge._main_name
    try:
        with test.assertRaises(SystemExit) as done:
            _rewrite.rewrite_and_run_main(path)
        test.assertEqual(done.exception.code, 0)
    finally:
        sys.modules["__main__"] = main
        _bridge._main_name = saved_name
        linecache.checkcache(path)
    return path


class Base(unittest.TestCase):
    def setUp(self):
        RUNNER.clear()
        del CALLS[:]


# -------------------------------------------------------------------------------------------------


class TtlTests(Base):
    def test_units(self):
        self.assertEqual(devstash.parse_ttl("30s"), 30)
        self.assertEqual(devstash.parse_ttl("30m"), 1800)
        self.assertEqual(devstash.parse_ttl(" 2h "), 7200)
        self.assertEqual(devstash.parse_ttl("1d"), 86400)
        self.assertEqual(devstash.parse_ttl("1w"), 604800)

    def test_bad_ttl_text(self):
        for bad in ("1.5h", "10x", "h", "", "1 d", "-1d"):
            with self.assertRaises(ValueError) as e:
                devstash.parse_ttl(bad)
            self.assertEqual(str(e.exception), f"Invalid TTL format: {bad}")
        with self.assertRaises(ValueError) as e:
            devstash.stash(ttl="soon")
        self.assertEqual(str(e.exception), "Invalid TTL format: soon")

    def test_bad_ttl_in_a_marker(self):
        with self.assertRaises(ValueError) as e:
            _rewrite.rewrite("x = f(1)  # @devstash ttl=1.5h\n", "app.py")
        self.assertEqual(str(e.exception), "Invalid TTL format: 1.5h")
        self.assertIn("app.py:1", "".join(e.exception.__notes__))
        with self.assertRaises(ValueError):
            _rewrite.rewrite("# @devstash ttl=forever\nx = f(1)\n", "app.py")


class RewriteTests(Base):
    def test_inline_and_standalone_markers_with_ttl(self):
        src = textwrap.dedent("""\
            a = f(1)  # @devstash
            b = f(2)  # @devstash ttl=30m
            # @devstash
            c = f(3)
            # @devstash ttl=2h
            d = g(
                4,
            )
            e = f(5)
            s = "# @devstash"
            t = f(6)
            """)
        code, markers = _rewrite.rewrite(src, "app.py")
        self.assertEqual(markers, [(1, None), (2, 1800), (4, None), (6, 7200)])
        seen = []

        def marker(i):
            def m(func, *args, **kwargs):
                seen.append((i, func.__name__, args))
                return func(*args, **kwargs)
            return m

        def f(x):
            return x

        def g(x):
            return -x

        ns = {"f": f, "g": g}
        ns.update({f"__devstash_m{i}__": marker(i) for i in range(len(markers))})
        exec(code, ns)
        self.assertEqual(seen, [(0, "f", (1,)), (1, "f", (2,)), (2, "f", (3,)), (3, "g", (4,))])
        self.assertEqual((ns["a"], ns["d"], ns["e"], ns["t"]), (1, -4, 5, 6))
        self.assertEqual(code.co_filename, "app.py")

    def test_regexes_are_0_1_1s(self):
        self.assertTrue(_rewrite.is_devstash_marker("   #  @devstash   "))
        self.assertTrue(_rewrite.is_devstash_marker("# @devstash ttl=5m"))
        self.assertFalse(_rewrite.is_devstash_marker("# @devstash ttl=5m and more"))
        self.assertEqual(_rewrite.extract_ttl("x()  # @devstash ttl = 10s"), "10s")
        self.assertIsNone(_rewrite.extract_ttl("x()  # @devstash"))

    def test_outermost_call_only_and_siblings(self):
        src = "x = f(g(1)) + f(2)  # @devstash\n"
        code, markers = _rewrite.rewrite(src, "app.py")
        self.assertEqual(len(markers), 2)  # f(g(1)) and f(2); g(1) runs as an argument

    def test_marker_inside_a_method_is_not_mangled(self):
        src = textwrap.dedent("""\
            class C:
                def run(self):
                    return f(7)  # @devstash
            """)
        code, markers = _rewrite.rewrite(src, "app.py")
        ns = {"f": lambda x: x * 3, "__devstash_m0__": lambda func, *a: func(*a) + 1}
        exec(code, ns)
        self.assertEqual(ns["C"]().run(), 22)

    def test_a_marker_on_no_call_is_reported(self):
        err = io.StringIO()
        with redirect_stderr(err):
            _rewrite.rewrite("# @devstash\n\nx = f(1)\ny = 2  # @devstash\n", "warn_me.py")
        self.assertIn("warn_me.py:1: this # @devstash marker marks no call", err.getvalue())
        self.assertIn("warn_me.py:4:", err.getvalue())

    def test_marking_print_is_reported(self):
        err = io.StringIO()
        with redirect_stderr(err):
            code, markers = _rewrite.rewrite('print("v", compute(2))  # @devstash\n', "p.py")
        self.assertEqual(len(markers), 1)  # 0.1.1's meaning: the outermost call is marked
        self.assertIn("p.py:1: the marker stores print(...)", err.getvalue())

    def test_tracebacks_point_at_the_users_lines(self):
        import traceback

        try:
            run_script(self, """\
                def boom(x):
                    return 1 / x

                y = boom(0)  # @devstash
                """, name="tb_script.py")
        except ZeroDivisionError as e:
            frames = traceback.extract_tb(e.__traceback__)
        else:
            self.fail("no ZeroDivisionError")
        user = [(os.path.basename(f.filename), f.lineno, f.line) for f in frames
                if f.filename.endswith("tb_script.py")]
        self.assertEqual(user, [("tb_script.py", 4, "y = boom(0)  # @devstash"),
                                ("tb_script.py", 2, "return 1 / x")])

    def test_script_runs_as_main_and_hits_the_second_time(self):
        text = """\
            import sdk_test_box as box

            def slow_function(x):
                box.calls.append(x)
                return x * 2

            class Point:
                def __init__(self, x):
                    self.x = x

            def make_point(x):
                return Point(x)

            result = slow_function(5)  # @devstash
            # @devstash ttl=30m
            p = make_point(3)
            box.out.append((__name__, result, type(p).__module__, p.x))
            """
        run_script(self, text)
        self.assertEqual(BOX.out, [("__main__", 10, "__main__", 3)])
        self.assertEqual(BOX.calls, [5])
        self.assertEqual(RUNNER.ops.count("P"), 2)
        site = RUNNER.site_named("quickstart.slow_function")[-1]
        self.assertEqual((site["module"], site["kind"], site["line"]), ("quickstart", "call", 14))
        self.assertEqual(RUNNER.site_named("quickstart.make_point")[-1]["ttl_secs"], 1800)
        self.assertEqual(site["types"], "py-key-1;pickle-5")
        run_script(self, text)
        self.assertEqual(BOX.out, [("__main__", 10, "__main__", 3)])
        self.assertEqual(BOX.calls, [])  # both hits; the Point unpickled from __main__
        self.assertEqual(RUNNER.ops.count("P"), 2)


class ActivateTests(unittest.TestCase):
    """activate() in a real process, without a runner."""

    def run_py(self, text, env=None):
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "app.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        full_env = dict(os.environ, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
        full_env.pop("DEVSTASH_ACTIVE", None)
        full_env.pop("DEVSTASH_SKIP_REWRITE", None)
        full_env.update(env or {})
        done = subprocess.run([sys.executable, path], capture_output=True, text=True,
                              env=full_env, cwd=folder, timeout=60)
        return done

    SCRIPT = """\
        import devstash
        print("top")
        devstash.activate()

        def slow(x):
            return x + 1

        r = slow(1)  # @devstash
        print("rewritten" if "__devstash_m0__" in globals() else "plain", r, __name__)
        """

    def test_without_a_runner_calls_run_uncached_with_one_warning(self):
        done = self.run_py(self.SCRIPT)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "top\ntop\nrewritten 2 __main__\n")
        self.assertEqual(done.stderr.count(_bridge.NO_RUNNER), 1, done.stderr)
        self.assertNotIn("WARNING", done.stderr)

    def test_skip_rewrite(self):
        for value in ("1", "true", "YES"):
            done = self.run_py(self.SCRIPT, {"DEVSTASH_SKIP_REWRITE": value})
            self.assertEqual(done.stdout, "top\nplain 2 __main__\n", done.stderr)
        done = self.run_py(self.SCRIPT, {"DEVSTASH_ACTIVE": "1"})
        self.assertEqual(done.stdout, "top\nplain 2 __main__\n", done.stderr)

    def test_stash_without_a_runner(self):
        done = self.run_py("""\
            import devstash

            @devstash.stash(ttl="1d")
            def f(x):
                print("ran", x)
                return x * 2

            print(f(2), f(2), devstash.running())
            """)
        self.assertEqual(done.stdout, "ran 2\nran 2\n4 4 False\n")
        self.assertEqual(done.stderr.count(_bridge.NO_RUNNER), 1)

    def test_bad_marker_ttl_fails_at_activate(self):
        done = self.run_py("""\
            import devstash
            devstash.activate()
            x = abs(-1)  # @devstash ttl=1.5h
            """)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("ValueError: Invalid TTL format: 1.5h", done.stderr)


class KeyTests(Base):
    def test_dict_order_does_not_matter(self):
        self.assertEqual(enc({"a": 1, "b": 2}), enc({"b": 2, "a": 1}))
        self.assertEqual(enc(x=1, y=2), _key.encode_call((), {"y": 2, "x": 1}))
        self.assertEqual(enc({1, 2, 3}), enc({3, 2, 1}))
        self.assertNotEqual(enc({"a": 1}), enc({"a": 2}))
        self.assertNotEqual(enc({"a": 1, "b": 2}), enc({"a": 2, "b": 1}))

    def test_numbers_are_distinct_by_type_and_bits(self):
        keys = [enc(v) for v in (0, 0.0, -0.0, False, None, 1, 1.0, True, 1 + 0j, "1", b"1")]
        self.assertEqual(len(set(keys)), len(keys))
        self.assertEqual(enc(float("nan")), enc(-float("nan")))
        self.assertEqual(enc(float("nan")), enc(float("inf") - float("inf")))
        self.assertNotEqual(enc(2 ** 64), enc(2 ** 64 + 1))
        self.assertNotEqual(enc(-(2 ** 70)), enc(2 ** 70))
        for n in (0, 1, -1, 127, 128, -128, -129, 255, 256, 1024, 1025, 2 ** 63, -(2 ** 63)):
            key = enc(n)  # 'A', 1 argument, the int, 0 keywords
            self.assertEqual(key[:3], b"A\x01" + _key._T_INT)
            self.assertEqual(key[-1:], b"\x00")
            size = key[3]
            self.assertEqual(len(key), 5 + size)
            self.assertEqual(int.from_bytes(key[4:4 + size], "little", signed=True), n)

    def test_fast_paths_match_the_general_encoding(self):
        for v in (0, 5, -256, 1024, 1025, 2 ** 80, "", "abc", "x" * 127, "x" * 128, "é", True,
                  None, 1.5, b"x", [1], {"a": 1}):
            general = b"A\x01" + _key._enc(v, 1) + b"\x00"
            self.assertEqual(enc(v), general, v)
        self.assertEqual(enc(1, "a"), b"A\x02" + _key._enc(1, 1) + _key._enc("a", 1) + b"\x00")

    def test_keys_are_the_documented_bytes(self):
        # The bytes of keys stored by earlier versions: entries must keep hitting.
        # A list, not a dict: (1,), (1.0,) and (True,) are equal dict keys.
        golden = [
            ((1,), b"A\x01\x03\x01\x01\x00"),
            ((-128,), b"A\x01\x03\x02\x80\xff\x00"),
            ((5000,), b"A\x01\x03\x02\x88\x13\x00"),
            ((70000,), b"A\x01\x03\x03\x70\x11\x01\x00"),
            ((2 ** 31,), b"A\x01\x03\x05\x00\x00\x00\x80\x00\x00"),
            ((True,), b"A\x01\x02\x00"),
            ((None,), b"A\x01\x00\x00"),
            ((1.0,), b"A\x01\x04" + struct.pack("<d", 1.0) + b"\x00"),
            ((-0.0,), b"A\x01\x04" + b"\x00" * 7 + b"\x80\x00"),
            ((float("nan"),), b"A\x01\x04" + struct.pack("<d", float("nan")) + b"\x00"),
            (("é",), b"A\x01\x06\x02\xc3\xa9\x00"),
            ((b"xy",), b"A\x01\x07\x02xy\x00"),
            (((1, "a"),), b"A\x01\x0a\x02\x03\x01\x01\x06\x01a\x00"),
            ((1, 2.5), b"A\x02\x03\x01\x01\x04" + struct.pack("<d", 2.5) + b"\x00"),
        ]
        for args, key in golden:
            self.assertEqual(_key.encode_call(args, {}), key, args)
        self.assertEqual(enc(x=1), b"A\x00\x01\x01x\x03\x01\x01")

    def test_fast_paths_give_the_general_keys(self):
        # Every encoder against the format as documented in _key, written out plainly here;
        # and a G request's fast paths against its head followed by the call's key.
        def varint(n):
            out = b""
            while True:
                low, n = n & 0x7F, n >> 7
                if not n:
                    return out + bytes((low,))
                out += bytes((low | 0x80,))

        def plain(v):
            t = type(v)
            if v is None:
                return b"\x00"
            if t is bool:
                return b"\x02" if v else b"\x01"
            if t is int:
                n = (v.bit_length() + 8) >> 3
                return b"\x03" + varint(n) + v.to_bytes(n, "little", signed=True)
            if t is float:
                return b"\x04" + struct.pack("<d", v if v == v else float("nan"))
            if t is str:
                b = v.encode("utf-8", "surrogatepass")
                return b"\x06" + varint(len(b)) + b
            if t is bytes:
                return b"\x07" + varint(len(v)) + v
            if t is tuple:
                return b"\x0a" + varint(len(v)) + b"".join(plain(x) for x in v)
            return _key.encode(v)  # other types: the general encoder

        class MyInt(int):
            pass

        class MyStr(str):
            pass

        class MyFloat(float):
            pass

        class Level(enum.IntEnum):
            LOW = 1

        ints = [0, 1, -1, 127, 128, -127, -128, -129, 255, 256, 1024, 1025, -256, -257, 32767,
                32768, -32767, -32768, -32769, 2 ** 23, -(2 ** 23), 2 ** 31 - 1, 2 ** 31,
                -(2 ** 31), 2 ** 39, 2 ** 55, 2 ** 63 - 1, 2 ** 63, -(2 ** 63), 2 ** 64, 2 ** 1100,
                -(2 ** 1100)]
        ints += [sign * (3 ** e) for e in range(0, 90) for sign in (1, -1)]
        floats = [0.0, -0.0, 1.0, 1.5, -2.5, 1e300, -1e-300, 5e-324, float("inf"),
                  -float("inf"), float("nan"), -float("nan"), float("inf") - float("inf")]
        texts = ["", "a", "é", "日本", "x" * 127, "x" * 128, "é" * 64, "a\x00b", "\ud800",
                 "x\udfff" * 3]
        blobs = [b"", b"x", b"\x00" * 127, b"\xff" * 128]
        values = ints + floats + texts + blobs + [True, False, None, (), (1,), (1, (2.5, ("s",))),
                                                   (True, 1, 1.0)]
        for v in values:
            self.assertEqual(enc(v), b"A\x01" + plain(v) + b"\x00", v)
            self.assertEqual(_key.encode(v), plain(v), v)
        # Values of other types that equal them keep keys of their own.
        others = [MyInt(5), MyInt(2 ** 40), MyStr("ab"), MyFloat(1.5), Level.LOW, 1 + 0j,
                  bytearray(b"x"), [1], {"a": 1}, {1, 2}]
        self.assertEqual(len({enc(v) for v in [True, 1, 1.0, "1", b"1"] + others}), 15)
        self.assertNotEqual(enc(MyInt(5)), enc(5))
        self.assertNotEqual(enc(MyStr("ab")), enc("ab"))
        self.assertNotEqual(enc(MyFloat(1.5)), enc(1.5))
        self.assertNotEqual(enc(Level.LOW), enc(1))
        head = b"G" + struct.pack("<II", 7, 0)
        self.assertEqual(len(head), _key.REQUEST_HEAD)
        for v in values + others:
            calls = (((v,), {}), ((v, v), {}), ((), {"k": v}), ((1, v), {"b": v, "a": 2}))
            for args, kwargs in calls:
                self.assertEqual(_key.call_request(head, args, kwargs),
                                 head + _key.encode_call(args, kwargs), (v, args, kwargs))

    def test_containers_are_distinct(self):
        keys = [enc(v) for v in ([1], (1,), {1}, frozenset([1]), {1: None}, b"\x01",
                                 bytearray(b"\x01"), [[1]], [1, []], [[1], []])]
        self.assertEqual(len(set(keys)), len(keys))
        self.assertNotEqual(enc("a", "bc"), enc("ab", "c"))
        self.assertNotEqual(enc(["a", "bc"]), enc(["ab", "c"]))
        self.assertNotEqual(enc(1, 2), enc((1, 2)))
        self.assertNotEqual(enc(1, x=2), enc(1, 2))

    def test_positional_and_keyword_arguments_differ(self):
        self.assertNotEqual(enc(1), enc(x=1))

    def test_library_values(self):
        self.assertNotEqual(enc(Decimal("1.0")), enc(Decimal("1.00")))
        self.assertEqual(enc(Decimal("1.5")), enc(Decimal("1.5")))
        self.assertNotEqual(enc(Fraction(1, 2)), enc(0.5))
        self.assertNotEqual(enc(date(2024, 1, 2)), enc(datetime(2024, 1, 2)))
        t1 = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)
        t2 = datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))
        self.assertEqual(t1, t2)
        self.assertNotEqual(enc(t1), enc(t2))  # same instant, other zone: other str()
        self.assertNotEqual(enc(PurePosixPath("a/b")), enc("a/b"))
        self.assertNotEqual(enc(timedelta(1)), enc(timedelta(2)))
        self.assertEqual(enc(OrderedDict(a=1)), enc(OrderedDict(a=1)))
        self.assertNotEqual(enc(OrderedDict(a=1, b=2)), enc(OrderedDict(b=2, a=1)))

    def test_enums_dataclasses_objects(self):
        class Color(enum.Enum):
            RED = 1
            GREEN = 2

        @dataclasses.dataclass
        class Cfg:
            name: str
            opts: dict

        class Plain:
            def __init__(self, a):
                self.a = a

        class Slotted:
            __slots__ = ("a", "b")

            def __init__(self, a, b):
                self.a, self.b = a, b

        self.assertNotEqual(enc(Color.RED), enc(Color.GREEN))
        self.assertNotEqual(enc(Color.RED), enc(1))
        self.assertEqual(enc(Cfg("x", {"a": 1, "b": 2})), enc(Cfg("x", {"b": 2, "a": 1})))
        self.assertNotEqual(enc(Cfg("x", {})), enc(Cfg("y", {})))
        self.assertEqual(enc(Plain([1])), enc(Plain([1])))
        self.assertNotEqual(enc(Plain(1)), enc(Plain(2)))
        self.assertNotEqual(enc(Plain(1)), enc(Cfg(1, {})))
        self.assertNotEqual(enc(Slotted(1, 2)), enc(Slotted(2, 1)))
        P = namedtuple("P", "x y")
        self.assertNotEqual(enc(P(1, 2)), enc((1, 2)))

    def test_unpicklable_argument_raises_a_clear_type_error(self):
        @devstash.stash
        def use(data, conn=None):
            return 1

        lock = threading.Lock()
        with self.assertRaises(TypeError) as e:
            use({"a": [1, lock]})
        msg = str(e.exception)
        self.assertIn("argument 'data'", msg)
        self.assertIn("data['a'][1]", msg)
        self.assertIn("_thread.lock", msg)
        self.assertIn("use", msg)
        self.assertIn("devstash.secret", msg)
        with self.assertRaises(TypeError) as e:
            use(1, conn=lock)
        self.assertIn("argument 'conn'", str(e.exception))
        self.assertNotIn("P", RUNNER.ops)
        self.assertEqual(use(2), 1)  # the guard holds no state from the failures

    def test_self_referential_containers(self):
        a = [1]
        a.append(a)

        @devstash.stash
        def f(x):
            return 0

        with self.assertRaises(TypeError) as e:
            f(a)
        self.assertIn("contains itself", str(e.exception))
        d = {}
        d["d"] = d
        with self.assertRaises(TypeError):
            f(d)
        deep = []
        for _ in range(100):
            deep = [deep]
        self.assertEqual(f(deep), 0)  # deep but finite is fine
        self.assertEqual(f(deep), 0)

    def test_picklable_custom_reduce_uses_pickle_bytes(self):
        self.assertEqual(enc(Custom(1)), enc(Custom(1)))
        self.assertNotEqual(enc(Custom(1)), enc(Custom(2)))
        self.assertIn(_key._T_PICKLED, enc(Custom(1))[2:3])

    def test_functions_as_arguments(self):
        def make(k):
            return lambda x: x * k

        self.assertNotEqual(enc(make(1)), enc(make(2)))
        self.assertEqual(enc(make(1)), enc(make(1)))
        self.assertNotEqual(enc(len), enc(abs))

        def rec(n):
            return rec(n - 1) if n else 0

        enc(rec)  # a recursive closure refers to itself without end

    def test_secret_is_keyed_by_the_runners_hash(self):
        # The hash comes from the runner, found on first use (here, perhaps by no earlier test).
        self.assertTrue(_bridge.running())
        s = devstash.secret("sk-live-123")
        self.assertEqual(repr(s), "Secret(<redacted>)")
        self.assertEqual(str(s), "Secret(<redacted>)")
        self.assertEqual(f"{s}", "Secret(<redacted>)")
        self.assertEqual(s.expose(), "sk-live-123")
        k = enc(s)
        self.assertNotIn(b"sk-live", k)
        self.assertIn(hmac.new(b"the user's secret key", b"ssk-live-123", hashlib.sha256).digest(), k)
        self.assertEqual(k, enc(devstash.secret("sk-live-123")))
        self.assertNotEqual(k, enc(devstash.secret(b"sk-live-123")))
        self.assertNotEqual(k, enc(devstash.secret("other")))
        with self.assertRaises(TypeError):
            import pickle

            pickle.dumps(s)

        k2 = enc(Client(s))
        self.assertNotIn(b"sk-live", k2)
        self.assertNotEqual(k2, enc(Client(devstash.secret("other"))))


def _fresh(name, body, folder):
    """Writes a module and imports it anew (its source read from disk)."""
    path = os.path.join(folder, name + ".py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(body))
    linecache.checkcache(path)
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


class SiteTests(Base):
    def setUp(self):
        super().setUp()
        self.folder = tempfile.mkdtemp()
        sys.path.insert(0, self.folder)
        self.addCleanup(sys.path.remove, self.folder)

    def marker(self, line=1, ttl=None):
        return _bridge.make_marker("app.py", line, ttl, "app")

    def test_same_spelling_different_callees_are_different_sites(self):
        m = self.marker()

        def f(x):
            return x + 1
        first = f

        def f(x):  # noqa: F811 - the same spelling, another callee
            return x + 2
        second = f

        self.assertEqual(m(first, 1), 2)
        self.assertEqual(m(second, 1), 3)
        self.assertEqual(m(first, 1), 2)
        self.assertEqual(m(second, 1), 3)
        sites = RUNNER.site_named(f"{_bridge.module_name(__name__)}.SiteTests.test_same_spelling_different_callees_"
                                  "are_different_sites.<locals>.f")
        self.assertEqual(len(sites), 2)
        self.assertNotEqual(sites[0]["fingerprint"], sites[1]["fingerprint"])
        self.assertEqual(RUNNER.ops.count("P"), 2)

    def test_methods_functions_and_builtins(self):
        m = self.marker()

        class Greeter:
            def __init__(self, greeting):
                self.greeting = greeting

            def greet(self, name):
                return f"{self.greeting}, {name}"

        self.assertEqual(m(Greeter("hi").greet, "bob"), "hi, bob")
        self.assertEqual(m(Greeter("yo").greet, "bob"), "yo, bob")  # self is an argument
        self.assertEqual(m(Greeter("hi").greet, "bob"), "hi, bob")
        self.assertEqual(RUNNER.ops.count("P"), 2)
        callee = [s["callee"] for s in RUNNER.sites if s["callee"].endswith("Greeter.greet")]
        self.assertTrue(callee and "Greeter.greet" in callee[-1])
        self.assertEqual(m(math.factorial, 20), math.factorial(20))
        self.assertEqual(m(math.factorial, 20), math.factorial(20))
        self.assertEqual(RUNNER.site_named("math.factorial")[-1]["fingerprint"][:9], "lib:math;")
        self.assertEqual(m("a-b".split, "-"), ["a", "b"])
        self.assertEqual(m("x-y".split, "-"), ["x", "y"])  # the str is part of the key
        self.assertEqual(m(sorted, [3, 1, 2]), [1, 2, 3])
        self.assertEqual(m(dict, a=1), {"a": 1})
        import functools

        self.assertEqual(m(functools.partial(pow, 2), 10), 1024)
        self.assertEqual(m(functools.partial(pow, 3), 10), 3 ** 10)

        class Adder:
            def __init__(self, k):
                self.k = k

            def __call__(self, x):
                return x + self.k

        self.assertEqual(m(Adder(1), 1), 2)
        self.assertEqual(m(Adder(2), 1), 3)

    def test_closure_cells_change_the_key(self):
        m = self.marker()

        def make_adder(k):
            def add(x):
                return x + k
            return add

        self.assertEqual(m(make_adder(1), 10), 11)
        self.assertEqual(m(make_adder(2), 10), 12)
        self.assertEqual(m(make_adder(1), 10), 11)
        self.assertEqual(RUNNER.ops.count("P"), 2)
        self.assertEqual(RUNNER.ops.count("R"), 1)  # one site: the code of `add`
        lambdas = [lambda x, k=k: x * k for k in (2, 3)]
        self.assertEqual(m(lambdas[0], 5), 10)
        self.assertEqual(m(lambdas[1], 5), 15)  # a default argument the call used
        self.assertEqual(m(lambdas[1], 5, k=4), 20)

    def test_editing_a_function_changes_its_fingerprint(self):
        mod = _fresh("edited_mod", """\
            def compute(x):
                return x * 2
            """, self.folder)
        fp1 = _bridge.code_fingerprint(mod.compute)
        mod = _fresh("edited_mod", """\
            def compute(x):
                return x * 3
            """, self.folder)
        fp2 = _bridge.code_fingerprint(mod.compute)
        mod = _fresh("edited_mod", """\
            def compute(x):
                # a comment is an edit of the source too
                return x * 3
            """, self.folder)
        fp3 = _bridge.code_fingerprint(mod.compute)
        self.assertEqual(len({fp1, fp2, fp3}), 3)
        mod = _fresh("edited_mod", """\
            def compute(x):
                # a comment is an edit of the source too
                return x * 3
            """, self.folder)
        self.assertEqual(_bridge.code_fingerprint(mod.compute), fp3)
        # And the store sees it: the edited function misses.
        m = self.marker()
        self.assertEqual(m(mod.compute, 2), 6)
        mod = _fresh("edited_mod", "def compute(x):\n    return x * 4\n", self.folder)
        self.assertEqual(m(mod.compute, 2), 8)

    def test_two_lambdas_on_one_line(self):
        m = self.marker()
        f = lambda x: x + 1; g = lambda x: x * 10  # noqa: E702,E731
        self.assertEqual(m(f, 5), 6)
        self.assertEqual(m(g, 5), 50)

    def test_decorated_functions_sharing_a_wrapper(self):
        import functools

        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a)
            return wrapper

        @deco
        def one(x):
            return 1

        @deco
        def two(x):
            return 2

        m = self.marker()
        self.assertEqual((m(one, 0), m(two, 0), m(one, 0), m(two, 0)), (1, 2, 1, 2))
        self.assertEqual(len({s["callee"] for s in RUNNER.sites[-2:]}), 2)

    def test_generator_functions_run_uncached_with_a_warning(self):
        m = self.marker()

        def gen(n):
            yield from range(n)

        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(list(m(gen, 3)), [0, 1, 2])
            self.assertEqual(list(m(gen, 3)), [0, 1, 2])
        self.assertEqual(err.getvalue().count("is a generator function"), 1)
        self.assertNotIn("G", RUNNER.ops)

    def test_library_function_fingerprint(self):
        import json as j

        fp = _bridge.code_fingerprint(j.dumps)
        self.assertTrue(fp.startswith("lib:json;"), fp)

    def test_exceptions_forget_the_ticket(self):
        m = self.marker()

        def fails(x):
            raise KeyError(x)

        with self.assertRaises(KeyError):
            m(fails, 1)
        self.assertEqual(RUNNER.ops[-3:], ["G", "B", "F"])
        self.assertNotIn("P", RUNNER.ops)
        self.assertEqual(RUNNER.tickets, {})

    def test_begin_end_around_the_call(self):
        m = self.marker()
        order = []

        def work(x):
            order.append(list(RUNNER.ops))
            return x

        m(work, 1)
        self.assertEqual(order[0][-2:], ["G", "B"])
        self.assertEqual(RUNNER.ops[-2:], ["E", "P"])

    def test_unpicklable_value_is_returned_with_a_warning(self):
        m = self.marker()

        def make_lock(x):
            return threading.Lock()

        err = io.StringIO()
        with redirect_stderr(err):
            v1 = m(make_lock, 1)
            v2 = m(make_lock, 1)
        self.assertTrue(hasattr(v1, "acquire") and hasattr(v2, "acquire"))
        self.assertEqual(err.getvalue().count("cannot be pickled, so it is not stored"), 1)
        self.assertIn("_thread.lock", err.getvalue())
        self.assertNotIn("P", RUNNER.ops)
        self.assertEqual(RUNNER.tickets, {})

    def test_a_value_that_no_longer_unpickles_is_recomputed(self):
        m = self.marker()

        def f(x):
            CALLS.append(x)
            return x

        m(f, 1)
        (key,) = RUNNER.store
        value, at, preview = RUNNER.store[key]
        RUNNER.store[key] = (b"\x80\x05cno_such_module\nThing\n.", at, preview)
        self.assertEqual(m(f, 1), 1)
        self.assertEqual(CALLS, [1, 1])
        self.assertEqual(m(f, 1), 1)
        self.assertEqual(CALLS, [1, 1])
        self.assertTrue(any("cannot be unpickled" in msg for _, msg in RUNNER.logs))

    def test_corrupt_asks_again_with_refresh(self):
        m = self.marker()

        def f(x):
            CALLS.append(x)
            return x

        m(f, 1)
        RUNNER.corrupt_next.add(next(iter(RUNNER.store)))
        self.assertEqual(m(f, 1), 1)
        self.assertEqual(CALLS, [1, 1])

    def test_ttl_expiry(self):
        m = self.marker(ttl=60)

        def f(x):
            CALLS.append(x)
            return x

        m(f, 1)
        RUNNER.clock += 30
        m(f, 1)
        RUNNER.clock += 61
        m(f, 1)
        self.assertEqual(CALLS, [1, 1])

    def test_preview(self):
        m = self.marker()

        def f(*a, **k):
            return 0

        m(f, "x" * 1000, [1] * 1000, b"\x00" * 100000, key=devstash.secret("pw"))
        (value, _, preview) = next(iter(RUNNER.store.values()))
        self.assertLessEqual(len(preview.encode()), 200)
        self.assertTrue(preview.startswith("('xxxx"))
        self.assertNotIn("pw'", preview)


class StashTests(Base):
    def test_stash_decorator(self):

        @devstash.stash
        def square(x):
            """Squares."""
            CALLS.append(x)
            return x * x

        self.assertEqual(square(3), 9)
        self.assertEqual(square(3), 9)
        self.assertEqual(square(4), 16)
        self.assertEqual(CALLS, [3, 4])
        self.assertEqual(square.__doc__, "Squares.")
        self.assertEqual(square.__name__, "square")
        site = RUNNER.sites[-1]
        self.assertEqual(site["kind"], "fn")
        self.assertEqual(site["file"], __file__ if __file__.endswith(".py") else site["file"])
        self.assertTrue(site["callee"].endswith("test_stash_decorator.<locals>.square"))

    def test_stash_with_ttl_and_methods(self):

        class Model:
            def __init__(self, w):
                self.w = w

            @devstash.stash(ttl="1d")
            def predict(self, x):
                CALLS.append((self.w, x))
                return self.w * x

            @devstash.stash("2h")
            @classmethod
            def build(cls, w):
                return cls(w)

            @staticmethod
            @devstash.stash
            def helper(x):
                return x

        self.assertEqual(Model(2).predict(3), 6)
        self.assertEqual(Model(2).predict(3), 6)
        self.assertEqual(Model(5).predict(3), 15)
        self.assertEqual(CALLS, [(2, 3), (5, 3)])
        self.assertEqual(RUNNER.sites[-1]["ttl_secs"], 86400)
        self.assertEqual(Model.build(7).w, 7)
        self.assertEqual(Model.build(7).w, 7)
        self.assertEqual(Model.helper(1), 1)

    def test_marked_call_of_a_stashed_function_is_stored_once(self):
        @devstash.stash
        def f(x):
            return x

        m = _bridge.make_marker("app.py", 1, None, "app")
        self.assertEqual(m(f, 1), 1)
        self.assertEqual(m(f, 1), 1)
        self.assertEqual(RUNNER.ops.count("P"), 1)

    def test_async_functions(self):

        @devstash.stash
        async def fetch(x):
            CALLS.append(x)
            await asyncio.sleep(0)
            return x * 2

        async def main():
            return [await fetch(1), await fetch(1), await fetch(2)]

        self.assertEqual(asyncio.run(main()), [2, 2, 4])
        self.assertEqual(CALLS, [1, 2])
        m = _bridge.make_marker("app.py", 1, None, "app")

        async def double(x):
            CALLS.append(("m", x))
            return x * 2

        async def main2():
            return [await m(double, 3), await m(double, 3)]

        self.assertEqual(asyncio.run(main2()), [6, 6])
        self.assertEqual(CALLS.count(("m", 3)), 1)

    def test_stash_any_callable(self):
        wrapped = devstash.stash(math.factorial)
        self.assertEqual(wrapped(10), 3628800)
        self.assertEqual(wrapped(10), 3628800)
        self.assertEqual(RUNNER.ops.count("P"), 1)
        self.assertEqual(RUNNER.sites[-1]["kind"], "fn")


class HttpTests(Base):
    def test_get_with_cache_and_params(self):
        RUNNER.http_routes["https://api.example.com/x?q=1&r=a+b"] = (
            200, [["Content-Type", "application/json; charset=utf-8"]], b'{"a": 1}')
        r = dhttp.get("https://api.example.com/x", params={"q": 1, "r": "a b"}, cache="24h",
                      timeout=2.5, headers={"Authorization": devstash.secret("Bearer t")})
        self.assertEqual((r.status, r.ok, r.json(), r.text), (200, True, {"a": 1}, '{"a": 1}'))
        self.assertEqual(r.header("content-TYPE"), "application/json; charset=utf-8")
        spec, body = RUNNER.http_seen[-1]
        self.assertEqual(spec["cache"], {"ttl_secs": 86400})
        self.assertEqual(spec["timeout_ms"], 2500)
        self.assertEqual(spec["headers"], [["Authorization", "Bearer t"]])
        self.assertEqual(body, b"")

    def test_post_json_is_compact_and_sorted(self):
        RUNNER.http_routes["https://h/p"] = (201, [], b"")
        r = dhttp.post("https://h/p", json={"b": 1, "a": [1, 2]})
        spec, body = RUNNER.http_seen[-1]
        self.assertEqual(body, b'{"a":[1,2],"b":1}')
        self.assertEqual(spec["headers"], [["Content-Type", "application/json"]])
        self.assertEqual((spec["method"], spec["cache"], spec["timeout_ms"]), ("POST", None, None))
        self.assertEqual(r.status, 201)

    def test_errors(self):
        with self.assertRaises(dhttp.HttpError) as e:
            dhttp.get("https://not-allowed/")
        self.assertEqual(e.exception.kind, "NotAllowed")
        self.assertIn("--allow-net", e.exception.message)
        RUNNER.http_routes["https://h/404"] = (404, [], b"nope")
        r = dhttp.get("https://h/404")
        self.assertFalse(r.ok)
        with self.assertRaises(dhttp.HttpError) as e:
            r.raise_for_status()
        self.assertEqual((e.exception.kind, e.exception.status), ("Status", 404))
        self.assertEqual(str(e.exception), "GET https://h/404 answered 404")
        with self.assertRaises(ValueError) as e:
            dhttp.get("https://h/404", cache="1.5h")
        self.assertEqual(str(e.exception), "Invalid TTL format: 1.5h")


class HitPathTests(Base):
    def test_small_answers_read_as_pickle_reads_them(self):
        import pickle

        values = [0, 1, 5, 255, 256, 1000, 65535, 65536, -1, -5, -256, 2 ** 31 - 1, -(2 ** 31),
                  2 ** 31, 2 ** 70, -(2 ** 70), 0.0, -0.0, 1.5, -2.5e300, 5e-324, float("inf"),
                  True, False, None, "", "ab", "abcd", b"", [], (), (1,), [1, 2], {"a": 1},
                  1 + 2j]
        for v in values:
            for answer in (b"\x00" + pickle.dumps(v, protocol=5), b"\x00" + pickle.dumps(v)):
                got = _bridge._decode(answer)
                self.assertIs(type(got), type(v), v)
                self.assertEqual(repr(got), repr(v))
        got = _bridge._decode(b"\x00" + pickle.dumps(float("nan"), protocol=5))
        self.assertTrue(math.isnan(got))
        # Answers of the lengths the fast path reads, holding other values.
        self.assertEqual(len(b"\x00" + pickle.dumps([], protocol=5)), 6)
        self.assertEqual(len(b"\x00" + pickle.dumps("ab", protocol=5)), 18)
        self.assertEqual(len(b"\x00" + pickle.dumps("a", protocol=5)), 17)
        # A damaged pickle of an int is an error (the lookup asks again), never a value.
        for bad in (b"\x00\x80\x05K\x05X", b"\x00\x80\x05\x95\x04" + b"\x00" * 7 + b"M\x88\x13X",
                    b"\x00\x80\x04\x95\x04" + b"\x00" * 7 + b"X\x88\x13."):
            with self.assertRaises(Exception):
                _bridge._decode(bad)

    def test_int_and_float_values_hit(self):
        @devstash.stash
        def ident(x):
            CALLS.append(x)
            return x

        values = [0, 7, 300, 70000, -3, 2 ** 40, 1.5, -0.0, 1, 1.0, True, "s"]
        for v in values:
            self.assertEqual(repr(ident(v)), repr(v))
        for v in values:
            got = ident(v)
            self.assertIs(type(got), type(v))
            self.assertEqual(repr(got), repr(v))
        self.assertEqual(len(CALLS), len(values))  # 1, 1.0 and True are three entries

    def test_registration_json_is_json_dumps(self):
        descs = [
            {"abi": 2, "module": "app", "callee": "app.f", "file": "/app.py", "line": 3,
             "ttl_secs": None, "fingerprint": "ab" * 32, "value_type": "python-pickle",
             "kind": "fn", "types": "py-key-1;pickle-5"},
            {"module": 'q"uo\\te', "callee": "é日本\ud800\x00\n\t\x1f\x7f\u2028", "line": -4,
             "ttl_secs": 86400, "flag": True, "other": False},
            {"float": 1.5, "s": "x"},  # not a type it writes: json itself
            {"list": [1, "a"]},
            {},
        ]
        for desc in descs:
            self.assertEqual(_bridge._json_object(desc), json.dumps(desc, separators=(",", ":")))

    def test_source_lines_are_linecaches(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.remove(os.path.join(folder, f)) for f in os.listdir(folder)])
        texts = {
            "lf.py": b"def f():\n    return 1\n",
            "crlf.py": b"def f():\r\n    return 1\r\n",
            "cr.py": b"def f():\r    return 1\r",
            "mixed.py": b"a = 1\r\nb = 2\rc = 3\n\n\r\n",
            "no_newline.py": b"x = 1\ny = 2",
            "utf8.py": "s = 'é日本'\n# \x0c \x0b \x1c \x85 \u2028 \u2029 (str.splitlines splits)\n"
            .encode(),
            "bom.py": b"\xef\xbb\xbfx = 1\n",
            "latin1.py": b"# -*- coding: latin-1 -*-\ns = '\xe9'\n",
            "cookie2.py": b"#!/usr/bin/env python\n# vim: set fileencoding=cp1252 :\ns = '\x80'\n",
            # Valid UTF-8 too, but the cookie says otherwise: 'Ã©', not 'é'.
            "latin1_utf8.py": b"# coding: latin-1\ns = '\xc3\xa9'\n",
            "cookie_line2.py": b"#!/usr/bin/python\n# -*- coding: iso-8859-15 -*-\n"
                                b"s = '\xc3\xa4'\n",
            "bad_utf8.py": b"x = 1\ns = '\xff'\n",
            "empty.py": b"",
            "one_newline.py": b"\n",
        }
        for name, data in texts.items():
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(data)
            linecache.checkcache(path)
            linecache.cache.pop(path, None)
            mine = _bridge._source_lines(path)
            kept = linecache.cache.get(path)
            linecache.cache.pop(path, None)
            self.assertEqual(mine, linecache.getlines(path), name)
            self.assertEqual(kept, linecache.cache.get(path), name)  # kept as linecache keeps it
            self.assertEqual(_bridge._source_lines(path), linecache.getlines(path), name)
        for missing in (os.path.join(folder, "missing.py"), "<string>", "", folder):
            self.assertEqual(_bridge._source_lines(missing), linecache.getlines(missing), missing)


class PerformanceTests(Base):
    def test_hit_path_is_lean(self):
        m = _bridge.make_marker("app.py", 1, None, "app")

        def slow_function(x):
            return x * 2

        m(slow_function, 5)
        before = list(RUNNER.ops)
        for _ in range(100):
            m(slow_function, 5)
        self.assertEqual(RUNNER.ops[len(before):], ["G"] * 100)


if __name__ == "__main__":
    unittest.main(verbosity=1)
