"""Column builders the newer channel formats share: alphanumeric ids and clock texts.

Like :mod:`payrecon.generator.columns`, everything works on whole Arrow arrays; an id is
a few table gathers, never a Python loop per row.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from functools import cache
from itertools import product

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.generator.columns import Lookup, clock_table, concat, lit, modulo
from payrecon.generator.plan import DaySpec

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SHANGHAI = timezone(timedelta(hours=8))  # the generated ledger's zone (no DST since 1991)
_SHANGHAI_SECONDS = 8 * 3600
_CHARS_PER_WORD = 10  # 62**10 < 2**62: one scrambled int64 word gives ten characters
_SPREAD = 0x5851F42D4C957F2D  # odd, below 2**63 (the PCG multiplier)
_FINISH = ((30, 0x3F58476D1CE4E5B9), (27, 0x14D049BB133111EB))


@cache
def _pairs(alphabet: str) -> pa.Array:
    return pa.array(["".join(pair) for pair in product(alphabet, repeat=2)], pa.string())


def code(values: pa.Array, alphabet: str, width: int) -> pa.Array:
    """``width`` characters of ``alphabet`` spelling non-negative ``values`` (mod base**width)."""
    base = len(alphabet)
    parts: list[Lookup] = []
    rest = values
    for _ in range(width // 2):
        parts.append(Lookup(_pairs(alphabet), modulo(rest, base * base)))
        rest = pc.divide(rest, lit(base * base))
    if width % 2:
        parts.append(Lookup(pa.array(list(alphabet)), modulo(rest, base)))
    return concat(parts)


def scramble(keys: pa.Array, salt: int) -> pa.Array:
    """A random-looking non-negative int64 per key (distinct keys rarely collide).

    Odd 63-bit multiplies that wrap on purpose and xor-shifts: every digit changes with
    the key and the salt, unlike ``key * m + salt`` with a small ``m``.
    """
    # Unchecked arithmetic wraps on purpose. The salt is added after the multiply, so two
    # salts never map one key onto a neighbour's value.
    mixed = pc.add(pc.multiply(keys, lit(_SPREAD)), lit(salt))
    for shift, multiplier in _FINISH:  # splitmix64's finaliser, on signed int64
        mixed = pc.bit_wise_xor(mixed, pc.shift_right(mixed, lit(shift)))
        mixed = pc.multiply(mixed, lit(multiplier))
    mixed = pc.bit_wise_xor(mixed, pc.shift_right(mixed, lit(31)))
    return pc.bit_wise_and(mixed, lit(2**62 - 1))


def random_id(keys: pa.Array, salt: int, alphabet: str, width: int) -> pa.Array:
    """A random-looking id of ``width`` characters per key, stable for the same salt."""
    modulus = len(alphabet) ** _CHARS_PER_WORD
    words = []
    for start in range(0, width, _CHARS_PER_WORD):
        word = modulo(scramble(keys, salt + start * 7_919), modulus)
        words.append(code(word, alphabet, min(_CHARS_PER_WORD, width - start)))
    return concat(words)


def random_digits(keys: pa.Array, salt: int, width: int) -> pa.Array:
    """``width`` random-looking digits per key, never a leading zero."""
    low = 10 ** (width - 1)
    return pc.cast(pc.add(modulo(scramble(keys, salt), 9 * low), lit(low)), pa.string())


@cache
def compact_clock_table() -> pa.Array:
    """``HHMMSS`` for every second of a day."""
    return pc.replace_substring(clock_table(), ":", "")


def midnight(spec: DaySpec) -> datetime:
    """The generated day's start in the ledger's zone (Asia/Shanghai)."""
    return datetime.combine(spec.day, time(), tzinfo=SHANGHAI)


def utc_text(spec: DaySpec, seconds: pa.Array) -> Lookup | pa.Array:
    """``YYYY-MM-DD HH:MM:SS`` in UTC of the day's local seconds: two lookups, no strftime.

    Asia/Shanghai is UTC+8 all year, so a local second is UTC 8 hours earlier, on the
    previous date before 08:00.
    """
    shifted = pc.subtract(seconds, lit(_SHANGHAI_SECONDS))
    before = pc.cast(pc.less(shifted, lit(0)), pa.int64())
    dates = (spec.date_text(separator="-") + " ", spec.date_text(1, separator="-") + " ")
    clock_of = pc.add(shifted, pc.multiply(before, lit(86_400)))
    return concat([Lookup(pa.array(dates), before), Lookup(clock_table(), clock_of)])


def zoned_text(spec: DaySpec, seconds: pa.Array, zone: str, fmt: str) -> pa.Array:
    """Wall-clock text in ``zone`` of the day's local ``seconds`` (Asia/Shanghai)."""
    start = int(midnight(spec).timestamp())
    instants = pc.add(seconds, lit(start)).cast(pa.timestamp("s", tz="UTC"))
    local = pc.local_timestamp(instants.cast(pa.timestamp("s", tz=zone)))
    return pc.strftime(local, format=fmt)
