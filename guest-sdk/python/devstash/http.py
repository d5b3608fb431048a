"""HTTP through the runner: a WASI guest has no sockets, so the runner makes requests on its
behalf, only to hosts allowed with ``--allow-net``, and can store the responses.

::

    from devstash import http

    repo = http.get(
        "https://api.github.com/repos/rust-lang/rust",
        headers={"Accept": "application/json"},
        cache="24h",            # store 2xx responses for a day
    )
    repo.raise_for_status()
    print(repo.json()["stargazers_count"])

Refusals and network failures (not allowed, offline, connection refused, timeout) raise
`HttpError`; a response with any status is returned (``raise_for_status()`` raises for 400 and
above).

Secret headers (``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``X-Api-Key``,
``api-key``) are never written to disk or into keys in clear by the runner. A header value may be
a ``devstash.Secret``.
"""

import json as _json
import struct

from . import _bridge
from ._key import Secret
from ._ttl import parse_ttl

__all__ = ["get", "post", "put", "delete", "request", "Response", "HttpError", "SECRET_HEADERS"]

#: Request headers that carry secrets (compared case-insensitively).
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")

_pack_I = struct.Struct("<I").pack


class HttpError(Exception):
    """A failed request.

    ``kind`` says what failed: ``"NotAllowed"`` (run with ``--allow-net=HOST``), ``"Offline"``
    (the runner is offline and has no stored response), ``"Connect"`` (refused, DNS, TLS),
    ``"Timeout"``, ``"InvalidRequest"``, ``"Status"`` (from ``raise_for_status()``: the server
    answered 400 or more; ``status`` and ``response`` are set) or ``"Other"``. ``message`` says
    what happened, and what to do where there is something to do.
    """

    def __init__(self, kind, message, response=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.response = response
        self.status = response.status if response is not None else None

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"HttpError(kind={self.kind!r}, message={self.message!r})"


class Response:
    """A response, whatever its status.

    ``status`` (int), ``headers`` (a list of ``(name, value)`` pairs, in order), ``content``
    (bytes) and ``url``; ``text``, ``json()``, ``ok``, ``header(name)`` and
    ``raise_for_status()``.
    """

    __slots__ = ("status", "headers", "content", "url", "method")

    def __init__(self, status, headers, content, url="", method="GET"):
        self.status = status
        self.headers = headers
        self.content = content
        self.url = url
        self.method = method

    @property
    def status_code(self):
        """The status (the name `requests` uses)."""
        return self.status

    @property
    def ok(self):
        """Whether the status is below 400."""
        return self.status < 400

    def header(self, name):
        """The first header with this name (case-insensitive), or None."""
        lower = name.lower()
        for k, v in self.headers:
            if k.lower() == lower:
                return v
        return None

    @property
    def encoding(self):
        """The charset of the Content-Type header, or ``utf-8``."""
        ctype = self.header("content-type") or ""
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "charset" and value:
                return value.strip().strip('"')
        return "utf-8"

    @property
    def text(self):
        """The body as text (undecodable bytes replaced)."""
        try:
            return self.content.decode(self.encoding, "replace")
        except LookupError:  # an unknown charset
            return self.content.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON; `HttpError` (kind ``"Other"``) when it is not JSON."""
        try:
            return _json.loads(self.content)
        except ValueError as e:
            raise HttpError("Other", f"the response is not the JSON expected: {e}") from None

    def raise_for_status(self):
        """Raises `HttpError` (kind ``"Status"``) for a status of 400 or more; returns the
        response otherwise."""
        if self.status >= 400:
            raise HttpError(
                "Status", f"{self.method} {self.url} answered {self.status}", response=self
            )
        return self

    def __repr__(self):
        return f"<Response [{self.status}] {len(self.content)} bytes>"


def _header_list(headers):
    if headers is None:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    out = []
    for name, value in items:
        if isinstance(value, Secret):
            value = value.expose()
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append([str(name), str(value)])
    return out


def _with_params(url, params):
    if not params:
        return url
    from urllib.parse import urlencode

    items = params.items() if hasattr(params, "items") else params
    query = urlencode([(k, v) for k, v in items if v is not None], doseq=True)
    if not query:
        return url
    base, hash_, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        sep = ""
    return base + sep + query + hash_ + fragment


def _has(headers, name):
    return any(k.lower() == name for k, _ in headers)


def _cache_of(cache):
    if cache is None or cache is False:
        return None
    if cache is True:  # kept until the cache is cleared
        return {"ttl_secs": None}
    secs = parse_ttl(cache)
    if secs <= 0:
        raise ValueError(f"Invalid TTL format: {cache}")
    return {"ttl_secs": secs}


def _timeout_ms(timeout):
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    return max(1, int(seconds * 1000))


def request(
    method,
    url,
    *,
    headers=None,
    params=None,
    json=None,
    data=None,
    timeout=None,
    cache=None,
):
    """Makes a request through the runner and returns its `Response`.

    Args:
        method: ``"GET"``, ``"POST"``, ... (upper-cased).
        url: An absolute ``http://`` or ``https://`` URL.
        headers: A dict or a list of ``(name, value)`` pairs; values may be `Secret`.
        params: Query parameters (a dict or pairs) appended to the URL.
        json: A body sent as JSON (compact, keys sorted) with ``Content-Type:
            application/json``.
        data: A body: bytes, str (UTF-8), or a dict (form-encoded).
        timeout: Seconds (or a timedelta) for the whole request; None for the runner's default.
        cache: A TTL (``"30m"``, ``"1d"``) to store successful (2xx) responses and answer
            identical later requests from the store; ``True`` keeps them until the cache is
            cleared; None (the default) stores nothing.

    Raises:
        HttpError: The request was refused or failed (see `HttpError.kind`).
        ValueError: An invalid ``cache`` TTL or ``timeout``.
    """
    method = str(method).upper()
    url = _with_params(str(url), params)
    header_list = _header_list(headers)
    body = b""
    if json is not None and data is not None:
        raise ValueError("pass json= or data=, not both")
    if json is not None:
        body = _json.dumps(json, separators=(",", ":"), sort_keys=True).encode()
        if not _has(header_list, "content-type"):
            header_list.append(["Content-Type", "application/json"])
    elif data is not None:
        if isinstance(data, str):
            body = data.encode()
        elif isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
        elif hasattr(data, "items") or isinstance(data, (list, tuple)):
            from urllib.parse import urlencode

            body = urlencode(list(data.items()) if hasattr(data, "items") else data,
                             doseq=True).encode()
            if not _has(header_list, "content-type"):
                header_list.append(["Content-Type", "application/x-www-form-urlencoded"])
        else:
            raise TypeError(f"data= takes bytes, str or a dict, not {type(data).__name__}")
    spec = {
        "method": method,
        "url": url,
        "headers": header_list,
        "timeout_ms": _timeout_ms(timeout),
        "cache": _cache_of(cache),
    }
    if not _bridge.running():
        raise HttpError(
            "Other",
            f"{method} {url}: devstash.http works only when the program runs under "
            f"`devstash run`",
        )
    head = _json.dumps(spec, separators=(",", ":")).encode()
    answer = _bridge.request(b"H" + _pack_I(len(head)) + head + body)
    n = int.from_bytes(answer[:4], "little")
    result = _json.loads(answer[4 : 4 + n])
    error = result.get("error")
    if error is not None:
        raise HttpError(error.get("kind", "Other"), error.get("message", ""))
    headers_out = [(k, v) for k, v in result.get("headers", [])]
    return Response(result["status"], headers_out, answer[4 + n :], url=url, method=method)


def get(url, *, headers=None, params=None, timeout=None, cache=None):
    """``GET url`` (see `request`)."""
    return request("GET", url, headers=headers, params=params, timeout=timeout, cache=cache)


def post(url, *, json=None, data=None, headers=None, params=None, timeout=None, cache=None):
    """``POST url`` with a JSON or raw body (see `request`)."""
    return request(
        "POST", url, headers=headers, params=params, json=json, data=data, timeout=timeout,
        cache=cache,
    )


def put(url, *, json=None, data=None, headers=None, params=None, timeout=None, cache=None):
    """``PUT url`` (see `request`)."""
    return request(
        "PUT", url, headers=headers, params=params, json=json, data=data, timeout=timeout,
        cache=cache,
    )


def delete(url, *, headers=None, params=None, timeout=None, cache=None):
    """``DELETE url`` (see `request`)."""
    return request("DELETE", url, headers=headers, params=params, timeout=timeout, cache=cache)
