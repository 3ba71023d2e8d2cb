"""What every reader returns: interactions in source order, plus item attributes if any."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass
class RawData:
    """Interactions as read from the source, before filtering, sorting or id mapping.

    `interactions` has columns `user`, `item` (original ids, any sortable dtype) and `ts`
    (Int64; for sources without time, the position in the user's sequence). Row order is the
    source order: it breaks ties between equal timestamps.

    `timed` is False when `ts` are positions (the S3-Rec text format, a generic file without
    --time-col): such data can only be split leave-one-out.

    `attributes`, when the source has them, is long format: one row per (item, attribute),
    `item` with the same dtype as in `interactions`, `attribute` the attribute's original
    name or id. Items without attributes simply have no rows.
    """

    interactions: pl.DataFrame
    attributes: pl.DataFrame | None = None
    #: whether `ts` holds real times (a temporal split needs them) or only positions
    timed: bool = True
