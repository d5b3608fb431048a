"""devstash for Python: mark slow or expensive calls, and the devstash runner stores their
results and hands them back on later runs.

    import devstash
    devstash.activate()

    result = slow_function(5)  # @devstash
    # @devstash ttl=30m
    rows = load_rows("data.csv")

    @devstash.stash(ttl="1d")
    def fetch_repo(name): ...

Run the script with ``devstash run app.py``. A marked call is keyed by its callee (module and
qualified name, and a hash of its source, so that editing it invalidates its entries) and by a
canonical encoding of its arguments; its value is stored pickled. Outside the runner the marked
calls simply run, after one warning on stderr.
"""

import os
import sys

from . import _bridge
from ._key import Secret
from ._ttl import parse_ttl, ttl_seconds

__version__ = "0.1.0"

__all__ = ["activate", "stash", "secret", "Secret", "http", "parse_ttl", "running"]

_activated = False


def _main_file():
    path = sys.argv[0] if sys.argv else ""
    if path and os.path.isfile(path):
        return path
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path and os.path.isfile(path):
        return path
    return None


def activate():
    """Turns on the ``# @devstash`` markers of the main script.

    Call it once, at the top of the script, after ``import devstash``. The script (the file
    ``sys.argv[0]`` names) is read, its marked calls are rewritten to go through the store, and
    the rewritten script runs as ``__main__``; the process then exits with status 0, so nothing
    after ``activate()`` runs twice. Calling it again (from the rewritten script) does nothing.

    Set ``DEVSTASH_SKIP_REWRITE=1`` (or ``true``, ``yes``) to run the script as written, with
    the markers as plain comments. ``DEVSTASH_ACTIVE=1`` in the environment also makes this a
    no-op (it is set while the rewritten script runs).

    A marker with an invalid TTL raises ``ValueError("Invalid TTL format: ...")`` here, before
    the script runs.
    """
    global _activated
    if os.environ.get("DEVSTASH_ACTIVE") == "1" or _activated:
        return
    main_file = _main_file()
    skip = os.environ.get("DEVSTASH_SKIP_REWRITE", "").strip().lower() in ("1", "true", "yes")
    if main_file is None or skip:
        return
    os.environ["DEVSTASH_ACTIVE"] = "1"
    _activated = True
    _bridge.running()  # without a runner, say so once, now
    from ._rewrite import rewrite_and_run_main

    rewrite_and_run_main(main_file)


def stash(func=None, *, ttl=None):
    """Stores the results of every call of a function.

    ::

        @devstash.stash
        def parse(path): ...

        @devstash.stash(ttl="1d")
        def fetch(url): ...

    Calls are keyed like marked calls: the function (its module, qualified name and a hash of
    its source), the canonical encoding of the arguments (for a method, ``self`` is one of
    them), its closure's values and the default values a call uses. ``ttl`` is a number and a
    unit (``s``, ``m``, ``h``, ``d``, ``w``); without it, a value is kept until the cache is
    cleared. Works with or without ``activate()``; an ``async def`` function stores the
    awaited result. Any callable can be wrapped: ``devstash.stash(math.factorial)(500)``.
    """
    if isinstance(func, str) and ttl is None:  # @stash("1d")
        func, ttl = None, func
    ttl_secs = ttl_seconds(ttl)
    caller = sys._getframe(1)
    where = (
        caller.f_code.co_filename,
        caller.f_lineno,
        _bridge.module_name(caller.f_globals.get("__name__")),
    )

    def decorate(f):
        if isinstance(f, (classmethod, staticmethod)):
            return type(f)(decorate(f.__func__))
        if not callable(f):
            raise TypeError(f"devstash.stash wraps a function, not {type(f).__name__}")
        return _bridge.stash_function(f, ttl_secs, where)

    return decorate if func is None else decorate(func)


def secret(value):
    """Wraps a secret (a str or bytes: an API key, a password) in a `Secret`.

    In a key, a Secret counts by a keyed hash that the runner computes under a key of its user,
    never by its value, so two runs with the same secret share entries and the secret itself
    reaches no entry, preview, tape or report. ``repr()`` and ``str()`` show
    ``Secret(<redacted>)``; ``.expose()`` returns the value, to use it.
    """
    return Secret(value)


def running():
    """Whether the program runs under the devstash runner (otherwise marked calls run
    uncached)."""
    return _bridge.running()


def __getattr__(name):
    # `devstash.http` is imported on first use, so that `import devstash` stays light.
    if name == "http":
        import importlib

        return importlib.import_module(__name__ + ".http")
    raise AttributeError(f"module 'devstash' has no attribute {name!r}")
