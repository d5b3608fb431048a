"""Time-to-live strings: a whole number and one unit, ``30s``, ``30m``, ``2h``, ``1d``, ``1w``.

The syntax, and the error for anything else, are those of devstash 0.1.1, so that markers and
``ttl=`` arguments written for it keep their meaning.
"""

import re

_TTL_PATTERN = re.compile(r"(?P<value>\d+)(?P<unit>[smhdw])")

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(ttl_str):
    """The number of seconds a TTL string stands for.

    ``parse_ttl("30m") == 1800``. Surrounding whitespace is ignored. Anything but digits followed
    by one of ``s``, ``m``, ``h``, ``d``, ``w`` raises ``ValueError("Invalid TTL format: ...")``.
    """
    if not isinstance(ttl_str, str):
        raise ValueError(f"Invalid TTL format: {ttl_str!r}")
    match = _TTL_PATTERN.fullmatch(ttl_str.strip())
    if not match:
        raise ValueError(f"Invalid TTL format: {ttl_str}")
    return int(match.group("value")) * _UNIT_SECONDS[match.group("unit")]


def ttl_seconds(ttl):
    """``None`` (keep until cleared) for ``None``, else the seconds of a TTL string."""
    if ttl is None:
        return None
    return parse_ttl(ttl)
