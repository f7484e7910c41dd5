"""Vectorised building blocks: seeded random columns and integer-to-text formatting.

Everything works on whole Arrow arrays, so a chunk of 100k rows costs a few kernel calls
and never a Python loop per row. Money stays integer until the moment it becomes text.

Speed notes (measured): Arrow's element-wise join costs about 20 ns per argument per row,
while a gather from a small table costs about 10 ns per row whatever the text. So text
that comes from a table (times of day, pools, amounts) is a :class:`Lookup`, and
:func:`concat` folds the constants around a lookup into its table before gathering.
"""

from __future__ import annotations

import array
import hashlib
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

YUAN_TABLE_SIZE = 1 << 19  # fen values with a ready-made text: up to 5,242.87 yuan
FOLD_LIMIT = 100_000  # folding into a bigger table costs more than the argument it saves
_WRAPPED_CACHE_BYTES = 64 << 20
_wrapped_lock = threading.Lock()
_wrapped_cache: dict[tuple[int, str, str, str | None], tuple[pa.Array, pa.Array]] = {}


@dataclass(frozen=True, eq=False)
class Lookup:
    """Text gathered from ``table`` by ``index``; constants beside it fold into the table."""

    table: pa.Array
    index: pa.Array
    prefix: str = ""
    suffix: str = ""

    @property
    def foldable(self) -> bool:
        return len(self.table) <= FOLD_LIMIT

    def around(self, prefix: str = "", suffix: str = "") -> Lookup:
        return Lookup(self.table, self.index, prefix + self.prefix, self.suffix + suffix)

    def gather(self, encoding: str | None) -> pa.Array:
        table = self.table
        if self.prefix or self.suffix:
            table = _wrapped(table, self.prefix, self.suffix, encoding)
        return pc.take(table, self.index)


Part: TypeAlias = str | pa.Array | Lookup
"""One piece of a line: a constant, a column, or a column gathered from a table."""


@cache
def lit(value: int | str | bytes | None, kind: pa.DataType | None = None) -> pa.Scalar:
    """A cached Arrow scalar (int64, string or binary unless ``kind`` says otherwise).

    pyarrow spends ~0.1 ms converting each bare Python value handed to a kernel (it probes
    for optional modules every time, under the import lock), so hot paths use these.
    """
    if kind is None:
        kind = pa.string() if isinstance(value, str) else pa.int64()
        kind = pa.binary() if isinstance(value, bytes) else kind
    return pa.scalar(value, kind)


@lru_cache(maxsize=4)
def arange(size: int) -> pa.Array:
    """``0 .. size-1`` as int64, built once per size (via ``array``: 5x faster)."""
    values = array.array("q", range(size))
    return pa.Array.from_buffers(pa.int64(), size, [None, pa.py_buffer(values)])


def random_u32(rng: random.Random, size: int) -> pa.Array:
    """``size`` uniform integers in ``[0, 2**32)`` as int64, seeded by ``rng``.

    The bytes come from SHAKE-128 keyed by 128 bits of ``rng``: standard, so stable
    across Python versions, and ~3x faster than ``rng.randbytes`` for a whole column.
    """
    key = rng.getrandbits(128).to_bytes(16, "little")
    raw = pa.py_buffer(hashlib.shake_128(key).digest(4 * size))
    return pa.Array.from_buffers(pa.uint32(), size, [None, raw]).cast(pa.int64())


def below(rng: random.Random, size: int, bound: int | pa.Array) -> pa.Array:
    """Uniform integers in ``[0, bound)``; ``bound`` may be a column of bounds (< 2**31)."""
    # Multiply-shift maps 32 random bits onto the range without a per-row division.
    scaled = pc.multiply(
        random_u32(rng, size), bound if isinstance(bound, pa.Array) else lit(bound)
    )
    return pc.shift_right(scaled, lit(32))


def span(rng: random.Random, size: int, bounds: tuple[int, int]) -> pa.Array:
    """Uniform integers in the half-open interval ``bounds``."""
    low, high = bounds
    return pc.add(below(rng, size, high - low), lit(low))


def bits(values: pa.Array, shift: int, width: int) -> pa.Array:
    """``width`` bits of ``values`` starting at bit ``shift``: independent small draws."""
    return pc.bit_wise_and(pc.shift_right(values, lit(shift)), lit((1 << width) - 1))


def bits_below(values: pa.Array, shift: int, width: int, bound: int) -> pa.Array:
    """A field of ``width`` random bits mapped onto ``[0, bound)``."""
    return pc.shift_right(pc.multiply(bits(values, shift, width), lit(bound)), lit(width))


def bits_chance(values: pa.Array, shift: int, width: int, probability: float) -> pa.Array:
    """True with ``probability`` (to ``2**-width``), from a field of random bits."""
    return pc.less(bits(values, shift, width), lit(round(probability * (1 << width))))


def fixed_digits(values: pa.Array, multiplier: int, offset: int, width: int) -> pa.Array:
    """A random-looking ``width``-digit number per distinct value, as text.

    ``(v * multiplier + offset) mod 9*10**(width-1)``, shifted up by ``10**(width-1)``:
    a bijection for values below the modulus when ``multiplier`` is coprime with 2, 3 and
    5, and never a leading zero, so no padding pass is needed. ``multiply_checked``
    turns a too-large value into an error instead of a silent collision.
    """
    low = 10 ** (width - 1)
    mixed = pc.add_checked(pc.multiply_checked(values, lit(multiplier)), lit(offset))
    return pc.cast(pc.add(modulo(mixed, 9 * low), lit(low)), pa.string())


def modulo(values: pa.Array, modulus: int) -> pa.Array:
    """``values mod modulus`` for non-negative integers."""
    quotient = pc.divide(values, lit(modulus))
    return pc.subtract(values, pc.multiply(quotient, lit(modulus)))


def decimal_text(values: pa.Array, scale: int) -> pa.Array:
    """Signed integer minor units as plain decimal text: ``-156`` -> ``-1.56`` (scale 2)."""
    unit = lit(10**scale)
    magnitude = pc.abs(values)
    whole = pc.divide(magnitude, unit)
    fraction = pc.subtract(magnitude, pc.multiply(whole, unit))
    padded = pc.utf8_lpad(pc.cast(fraction, pa.string()), width=scale, padding="0")
    sign = pc.if_else(pc.less(values, lit(0)), lit("-"), lit(""))
    whole_text = pc.cast(whole, pa.string())
    return pc.binary_join_element_wise(sign, whole_text, lit("."), padded, lit(""))


@cache
def _yuan_table() -> pa.Array:
    # Whole yuan x cents by two gathers: ~10x cheaper than formatting every value.
    fen = arange(YUAN_TABLE_SIZE)
    whole = pc.cast(arange(YUAN_TABLE_SIZE // 100 + 1), pa.string())
    cents = pa.array([f".{cent:02d}" for cent in range(100)])
    yuan_part = pc.take(whole, pc.divide(fen, lit(100)))
    return pc.binary_join_element_wise(yuan_part, pc.take(cents, modulo(fen, 100)), lit(""))


def yuan(fen: pa.Array) -> Part:
    """Yuan text with two decimals for integer fen: a table lookup when in range."""
    if len(fen) and (pc.min(fen).as_py() < 0 or pc.max(fen).as_py() >= YUAN_TABLE_SIZE):
        return decimal_text(fen, 2)
    return Lookup(_yuan_table(), fen)


@cache
def clock_table() -> pa.Array:
    """``HH:MM:SS`` for every second of a day, indexed by the second."""
    second = arange(86_400)
    two = pa.array([f"{n:02d}" for n in range(60)])
    hours = pc.take(two, pc.divide(second, lit(3600)))
    minutes = pc.take(two, modulo(pc.divide(second, lit(60)), 60))
    seconds = pc.take(two, modulo(second, 60))
    return pc.binary_join_element_wise(hours, minutes, seconds, lit(":"))


def clock(seconds: pa.Array) -> Lookup:
    """``HH:MM:SS`` for seconds of the day, one gather (~50x faster than ``strftime``)."""
    return Lookup(clock_table(), seconds)


def pool(values: tuple[str, ...], index: pa.Array, *, encoding: str | None = None) -> Lookup:
    """Values of ``values`` chosen by ``index``; bytes in ``encoding`` when given."""
    return Lookup(pool_table(values, encoding), index)


@cache
def pool_table(values: tuple[str, ...], encoding: str | None = None) -> pa.Array:
    """The table for :func:`pool`, built once, so folded variants of it are cached too."""
    if encoding is None:
        return pa.array(values, pa.string())
    return pa.array([value.encode(encoding) for value in values], pa.binary())


def concat(parts: Sequence[Part], *, encoding: str | None = None) -> pa.Array:
    """Join constants and columns element-wise into one text column.

    Adjacent constants merge, and a constant next to a :class:`Lookup` folds into its
    table, so a line template costs about one kernel argument per variable field. With
    ``encoding`` the result is binary: constants are encoded, columns and tables must
    already be bytes in that encoding (or ASCII).
    """
    items = _fold(_merge_constants(parts))
    arguments = [_argument(item, encoding) for item in items]
    return pc.binary_join_element_wise(*arguments, _constant("", encoding))


def _merge_constants(parts: Sequence[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def _fold(items: list[Part]) -> list[Part]:
    # A constant joins the foldable lookup before it (as suffix), else the one after it.
    folded: list[Part] = []
    prefix = ""
    for item in items:
        if isinstance(item, str):
            last = folded[-1] if folded else None
            if isinstance(last, Lookup) and last.foldable:
                folded[-1] = last.around(suffix=item)
            else:
                prefix = item
            continue
        if prefix and isinstance(item, Lookup) and item.foldable:
            folded.append(item.around(prefix=prefix))
        else:
            folded.extend([prefix, item] if prefix else [item])
        prefix = ""
    if prefix:
        folded.append(prefix)
    return folded


def _argument(item: Part, encoding: str | None) -> pa.Array | pa.Scalar:
    if isinstance(item, str):
        return _constant(item, encoding)
    column = item.gather(encoding) if isinstance(item, Lookup) else item
    return column if encoding is None else column.cast(pa.binary())


def _wrapped(table: pa.Array, prefix: str, suffix: str, encoding: str | None) -> pa.Array:
    # Templates repeat for every chunk, so each folded table is built once and kept
    # (the entry holds the table, so its id cannot be reused while cached).
    key = (id(table), prefix, suffix, encoding)
    with _wrapped_lock:
        hit = _wrapped_cache.get(key)
    if hit is not None:
        return hit[1]
    before, after = _constant(prefix, encoding), _constant(suffix, encoding)
    source = table if encoding is None else table.cast(pa.binary())
    result = pc.binary_join_element_wise(before, source, after, _constant("", encoding))
    with _wrapped_lock:
        _wrapped_cache[key] = (table, result)
        while sum(entry[1].nbytes for entry in _wrapped_cache.values()) > _WRAPPED_CACHE_BYTES:
            _wrapped_cache.pop(next(iter(_wrapped_cache)))  # oldest first
    return result


def _constant(text: str, encoding: str | None) -> pa.Scalar:
    return lit(text) if encoding is None else lit(text.encode(encoding))


def column(table: pa.Table, name: str) -> pa.Array:
    """One column as an array; zero-copy when it is one chunk (``combine_chunks`` copies)."""
    values = table.column(name)
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def payload(lines: pa.Array) -> pa.Buffer:
    """The bytes of a text column whose values already end in their newline, zero-copy."""
    if len(lines) == 0:
        return pa.py_buffer(b"")
    _, offsets_buffer, data = lines.buffers()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset
    )
    start, end = offsets[0].as_py(), offsets[len(lines)].as_py()
    return data.slice(start, end - start)
