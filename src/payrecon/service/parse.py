"""parse_bill: one bill file to canonical records, with totals and the footer check."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from payrecon.bills.registry import bill_parser
from payrecon.config import Settings
from payrecon.core.schema import CANONICAL, Kind
from payrecon.service.progress import Observer, SilentObserver


def parse_bill(
    channel: str,
    path: Path,
    settings: Settings,
    *,
    out: Path | None = None,
    observer: Observer | None = None,
) -> dict[str, Any]:
    """Parse ``path``; return ``{"rows", "by_kind", "footer", ...}``; optionally write Parquet.

    The Parquet file appears only when the whole bill parsed and its footer agreed.
    """
    observer = observer or SilentObserver()
    key = f"bill:{path}"
    observer.task(key, f"parsing {path.name}", path.stat().st_size, "bytes")
    parser = bill_parser(channel, path, settings, partial(observer.advance, key))
    by_kind = {kind.value: {"count": 0, "amount": 0} for kind in Kind}
    staged = out.with_name(f".{out.name}.partial") if out else None
    writer = pq.ParquetWriter(staged, CANONICAL) if staged else None
    try:
        for batch in parser.batches():
            _add_totals(by_kind, batch)
            if writer:
                writer.write_batch(batch)
    except BaseException:
        if writer:
            writer.close()
            Path(str(staged)).unlink(missing_ok=True)
        raise
    if writer and out and staged:
        writer.close()
        os.replace(staged, out)
    observer.done(key)
    footer = parser.footer
    return {
        "rows": sum(v["count"] for v in by_kind.values()),
        "by_kind": by_kind,
        "footer": footer.status if footer else "none",
        "declared": footer.declared if footer else {},
    }


def _add_totals(by_kind: dict[str, dict[str, int]], batch: Any) -> None:
    for kind, totals in by_kind.items():
        mask = pc.equal(batch.column("kind"), kind)
        totals["count"] += int(pc.sum(mask).as_py() or 0)
        totals["amount"] += int(pc.sum(pc.filter(batch.column("amount"), mask)).as_py() or 0)
