"""JavaScript value semantics the history folds need to give what the JS clients give.

Both folds replay a JavaScript client over stored chunks (the AI SDK's
``processUIMessageStream`` in ``packages/ai/src/ui/process-ui-message-stream.ts`` and
``@tanstack/ai``'s ``StreamProcessor``), so where the result depends on JavaScript itself
(``undefined`` keys that keep their place but are not serialised, ``===``, truthiness,
``String(number)``, ``JSON.stringify``, ``String.prototype.trim``, ``Date``) they use this one
module. Dates go through :mod:`datetime`; partial JSON through a library
(:mod:`resumable_chat.protocols.partial_json`).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "UNDEFINED",
    "JsError",
    "Undefined",
    "clone_json",
    "coalesce",
    "coerce_created_at",
    "export_json",
    "is_record",
    "iso_from_ms",
    "js_get",
    "js_number",
    "js_string",
    "js_stringify",
    "js_trim",
    "json_parse",
    "nullish",
    "parse_date_ms",
    "present",
    "same_value_zero_key",
    "strict_equals",
    "truthy",
    "valid_ms",
]

Json = Any


class Undefined:
    """JavaScript ``undefined``: a key that holds its position but is not serialised."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


#: The one ``undefined`` of both folds.
UNDEFINED: Final = Undefined()


class JsError(Exception):
    """The JavaScript handler would throw here (a ``TypeError`` on malformed data)."""


def js_get(value: object, key: str) -> Any:
    """``value.key`` for JSON values: a missing key (or a non-object) is ``undefined``.

    Property reads on ``null``/``undefined`` throw in JavaScript; they raise here too.
    """
    if isinstance(value, dict):
        return value.get(key, UNDEFINED)
    if value is None or value is UNDEFINED:
        raise JsError(f"Cannot read properties of {value!r} (reading {key!r})")
    return UNDEFINED


def nullish(value: object) -> bool:
    """``value == null``."""
    return value is None or value is UNDEFINED


def present(value: object) -> bool:
    """``value != null``: neither ``undefined`` nor ``null``."""
    return not nullish(value)


def coalesce(value: Any, fallback: Any) -> Any:
    """``value ?? fallback``."""
    return fallback if nullish(value) else value


def truthy(value: object) -> bool:
    """JavaScript truthiness (objects and arrays are truthy even when empty)."""
    if value is None or value is UNDEFINED or value is False:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def strict_equals(a: object, b: object) -> bool:
    """``a === b`` for JSON values (objects compare by identity)."""
    if a is UNDEFINED or b is UNDEFINED:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    return type(a) is type(b) and a == b


def same_value_zero_key(value: object) -> Any:
    """A hashable stand-in for ``value`` as a JavaScript ``Map``/``Set`` key (SameValueZero)."""
    if value is None or value is UNDEFINED or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", "NaN" if isinstance(value, float) and math.isnan(value) else float(value))
    return ("obj", id(value))


def is_record(value: object) -> bool:
    """A plain object (not ``null``, not an array)."""
    return isinstance(value, dict)


def js_number(number: int | float) -> str:
    """``String(number)`` / ``JSON.stringify(number)`` (non-finite → ``"null"`` in JSON)."""
    if isinstance(number, int) and abs(number) < 10**21:
        return str(int(number))
    value = float(number)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    sign = "-" if value < 0 else ""
    decimal = Decimal(repr(abs(value))).normalize()
    _, digit_tuple, exponent = decimal.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def js_string(value: object) -> str:
    """``String(value)`` for primitives; objects raise (their text is not meaningful)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    raise JsError("object concatenated into text")


def js_stringify(value: object) -> str:
    """``JSON.stringify(value)`` for JSON values (compact, JavaScript number format)."""
    if value is None or value is UNDEFINED:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = js_number(value)
        return "null" if text in ("NaN", "Infinity", "-Infinity") else text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(js_stringify(item) for item in value) + "]"
    if isinstance(value, dict):
        members = [
            f"{json.dumps(str(k), ensure_ascii=False)}:{js_stringify(v)}"
            for k, v in value.items()
            if v is not UNDEFINED
        ]
        return "{" + ",".join(members) + "}"
    raise JsError(f"cannot stringify {type(value).__name__}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_parse(value: object) -> Any:
    """``JSON.parse(value)`` (``String(value)`` first); ValueError when it would throw."""
    if isinstance(value, dict | list):
        raise ValueError("[object] is not JSON")
    text = js_string(value)
    return json.loads(text, parse_constant=_reject_constant)


_JS_WHITESPACE = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """``String.prototype.trim``."""
    start, end = 0, len(text)
    while start < end and text[start] in _JS_WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _JS_WHITESPACE:
        end -= 1
    return text[start:end]


def clone_json(value: Json) -> Json:
    """A deep copy of a JSON value (chunks are copied so callers may reuse theirs)."""
    if isinstance(value, dict):
        return {k: clone_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone_json(v) for v in value]
    return value


def export_json(value: Json) -> Json:
    """A deep copy as ``JSON.parse(JSON.stringify(value))`` would give it."""
    if isinstance(value, dict):
        return {k: export_json(v) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, list):
        return [None if v is UNDEFINED else export_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- Date --------------------------------------------------------------------------------------

#: ``Date``'s range: ±8.64e15 ms around the epoch.
MAX_DATE_MS: Final = 8_640_000_000_000_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_ISO_DATE = re.compile(
    r"(?P<year>[+-]\d{6}|\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?)?"
)


#: The Gregorian calendar repeats every 400 years, which are 146,097 days: dates outside
#: ``datetime``'s years 1 to 9999 are shifted by whole cycles into it and back.
_CYCLE_YEARS: Final = 400
_CYCLE_MS: Final = 146_097 * 86_400_000


def iso_from_ms(ms: int) -> str:
    """``new Date(ms).toISOString()``: ``YYYY-MM-DDTHH:mm:ss.sssZ``, years outside 0 to 9999
    as ``±YYYYYY``."""
    cycles = (ms - _CYCLE_MS * 5) // _CYCLE_MS  # shift into 2000..2399
    moment = _EPOCH + timedelta(milliseconds=ms - cycles * _CYCLE_MS)
    year = moment.year + cycles * _CYCLE_YEARS
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{'-' if year < 0 else '+'}{abs(year):06d}"
    return f"{year_text}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def parse_date_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an ECMAScript date-time string (the ISO form
    ``new Date(string)`` accepts: date only, date-time, with or without an offset, years as
    ``YYYY`` or ``±YYYYYY``; without an offset it is UTC), ``None`` for an invalid date. A day
    past the month's end rolls over into the next month, as V8 does (``2024-02-31`` is
    March 2)."""
    match = _ISO_DATE.fullmatch(text)
    if match is None or match["year"] == "-000000":
        return None
    year = int(match["year"])
    month = int(match["month"] or 1)
    day = int(match["day"] or 1)
    hour = int(match["hour"] or 0)
    minute = int(match["minute"] or 0)
    second = int(match["second"] or 0)
    millis = int((match["fraction"] or "0")[:3].ljust(3, "0"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if minute > 59 or second > 59 or hour > 24 or (hour == 24 and (minute or second or millis)):
        return None
    offset = timedelta(0)
    sign_offset = match["offset"]
    if sign_offset and sign_offset not in ("Z", "z"):
        digits = sign_offset[1:].replace(":", "")
        offset_hours, offset_minutes = int(digits[:2]), int(digits[2:])
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = timedelta(hours=offset_hours, minutes=offset_minutes)
        if sign_offset[0] == "-":
            offset = -offset
    cycles = (year - 2000) // _CYCLE_YEARS
    moment = datetime(year - cycles * _CYCLE_YEARS, month, 1, tzinfo=UTC) + timedelta(
        days=day - 1, hours=hour, minutes=minute, seconds=second, milliseconds=millis
    )
    ms = (moment - offset - _EPOCH) // timedelta(milliseconds=1) + cycles * _CYCLE_MS
    return ms if abs(ms) <= MAX_DATE_MS else None


def coerce_created_at(value: object) -> str | None:
    """``coerceCreatedAt`` of ``@tanstack/ai``: a date string → its normalised ISO form, else
    ``None``."""
    if not isinstance(value, str):
        return None
    ms = parse_date_ms(value)
    return None if ms is None else iso_from_ms(ms)


def valid_ms(value: object) -> int | None:
    """``value`` as a millisecond time if it is one (a finite number in the Date range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or abs(value) > MAX_DATE_MS:
        return None
    return int(value)
