"""The built-in `synthetic` dataset: sequences with item attributes, generated from a seed.

The generative model, chosen so that a sequential model clearly beats popularity and S3Rec's
attribute tasks carry signal, while the whole catalogue is still visited:

* Items are split into topics of 20-50 items; each topic into brands of about 6 items. Item
  popularity is Zipf-like over a random permutation of the ids (id order says nothing).
* Every item has 4-8 successors: the next item of a cycle through its topic, brand by brand (so
  every item has an incoming edge and the tail is visited), the rest mostly from its own topic,
  favouring its brand and, softly, popular items; a few come from the whole catalogue.
* A user starts at a popularity draw, whose topic becomes their home topic. Each next item is a
  successor of the current one with probability `FOLLOW`; otherwise a popularity draw, half the
  time restricted to the home topic (so the history beyond the last item also helps).
* Attributes: the topic, the brand (nested in the topic) and 0-2 noise tags from a shared pool.
  Topic and brand predict transitions; tags do not.

Everything is vectorised over users; the only Python loop is over sequence positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from seqbench.config.run import SYNTHETIC_MIN_MEAN_LEN
from seqbench.data.raw import RawData

DEFAULT_ITEMS = 1000
DEFAULT_MEAN_LEN = 20.0

MIN_LEN = SYNTHETIC_MIN_MEAN_LEN  # every sequence survives a 3-core user filter
MAX_LEN_FACTOR = 10  # lengths are capped at 10 x mean_len
LENGTH_SHAPE = 2.0  # negative binomial shape: skewed lengths, sd ~ 0.7 x (mean - 3)
TOPIC_SIZE = (20, 50)  # inclusive range of topic sizes
BRAND_SIZE = 6  # mean brand size within a topic
SUCCESSORS = (4, 8)  # inclusive range of successors per item
OUT_OF_TOPIC = 0.1  # share of non-cycle successors drawn from the whole catalogue
SAME_BRAND = 3.0  # weight multiplier for a same-brand successor candidate
SUCCESSOR_POP = 0.5  # successor candidates are weighted by popularity ** this
TRANSITION_SHAPE = 3.0  # transition weights ~ Gamma(3): uneven, but no edge negligible
ZIPF_EXPONENT = 0.9  # below 1 so the tail of a 200k catalogue survives a 3-core
ZIPF_OFFSET = 10.0  # Zipf-Mandelbrot offset: flattens the head a little
FOLLOW = 0.7  # P(next item is a successor of the current one)
HOME = 0.5  # P(a non-successor draw stays in the user's home topic)
MAX_TAGS = 2
START_TS = 1_300_000_000  # 2011-03-13, unix seconds
SPAN_S = 3 * 365 * 86_400  # users start within three years
MEAN_GAP_S = 86_400  # mean time between a user's interactions


def default_users(items: int) -> int:
    """Users when not given: `max(2000, 2 * items)`.

    At the default mean length (20) that is about 40 interactions per item, enough for the
    long tail of a Zipf catalogue to pass a 3-core filter (about 99% of items at
    `--items 200000`), while the default catalogue (1000 items, 2000 users, ~40k interactions)
    trains for 20 epochs on a laptop CPU in well under a minute.
    """
    return max(2000, 2 * items)


def generate(
    *,
    users: int | None = None,
    items: int = DEFAULT_ITEMS,
    mean_len: float = DEFAULT_MEAN_LEN,
    seed: int = 0,
) -> RawData:
    """Generate interactions (`user`, `item`, `ts`) and long-format item attributes.

    The sizes are checked where they are set (`DataConfig`: users >= 1, items >= 2, mean
    length >= 3, seed >= 0)."""
    users = default_users(items) if users is None else users
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(rng, items)
    lengths = _lengths(rng, users, mean_len)
    sequence = _walk(rng, catalogue, lengths)
    interactions = pl.DataFrame(
        {
            "user": np.repeat(np.arange(1, users + 1, dtype=np.int64), lengths),
            "item": sequence + 1,
            "ts": _timestamps(rng, lengths),
        },
        schema={"user": pl.Int64, "item": pl.Int64, "ts": pl.Int64},
    )
    return RawData(interactions, _attributes(rng, catalogue))


@dataclass
class _Catalogue:
    """Item structure, 0-based item indices throughout (ids are index + 1)."""

    topic: np.ndarray  # (items,) topic of each item
    brand: np.ndarray  # (items,) brand number within the item's topic
    pop_cdf: np.ndarray  # (items,) cumulative popularity over item indices
    by_topic: np.ndarray  # (items,) item indices grouped by topic, then brand
    topic_cdf: np.ndarray  # (items,) topic + cumulative popularity within it, for `by_topic`
    successors: np.ndarray  # (items, SUCCESSORS[1]) successor indices
    successor_cdf: np.ndarray  # (items, SUCCESSORS[1]) cumulative transition probabilities


def _catalogue(rng: np.random.Generator, items: int) -> _Catalogue:
    popularity = _popularity(rng, items)
    by_topic, sizes = _topics(rng, items)
    n_topics = len(sizes)
    topic_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    topic = np.empty(items, dtype=np.int64)
    topic[by_topic] = np.repeat(np.arange(n_topics), sizes)
    n_brands = np.maximum(1, np.rint(sizes / BRAND_SIZE)).astype(np.int64)
    brand = (rng.random(items) * n_brands[topic]).astype(np.int64)
    # Brands contiguous within each topic, so the topic's successor cycle walks brand by brand.
    by_topic = by_topic[np.lexsort((brand[by_topic], topic[by_topic]))]

    within = np.cumsum(popularity[by_topic])
    within -= np.repeat(within[topic_start] - popularity[by_topic][topic_start], sizes)
    totals = np.repeat(within[topic_start + sizes - 1], sizes)
    topic_cdf = np.repeat(np.arange(n_topics, dtype=np.float64), sizes) + within / totals
    topic_cdf[topic_start + sizes - 1] = np.arange(1, n_topics + 1)

    successors, weights = _successors(rng, popularity, by_topic, sizes, topic, brand)
    successor_cdf = np.cumsum(weights, axis=1)
    successor_cdf /= successor_cdf[:, -1:]
    return _Catalogue(
        topic,
        brand,
        np.cumsum(popularity) / popularity.sum(),
        by_topic,
        topic_cdf,
        successors,
        successor_cdf,
    )


def _popularity(rng: np.random.Generator, items: int) -> np.ndarray:
    """Zipf-Mandelbrot weights over a random permutation of items (normalised)."""
    rank = rng.permutation(items)
    weights = (rank + 1.0 + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    return weights / weights.sum()


def _topics(rng: np.random.Generator, items: int) -> tuple[np.ndarray, np.ndarray]:
    """A random order of items and topic sizes partitioning it (all within TOPIC_SIZE, bar
    catalogues smaller than one topic; a short remainder joins the last full topic)."""
    low, high = TOPIC_SIZE
    sizes = rng.integers(low, high + 1, size=items // low + 1)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, items)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] = items - (ends[count - 2] if count > 1 else 0)
    if count > 1 and sizes[-1] < low:
        sizes[-2] += sizes[-1]
        sizes = sizes[:-1]
    return rng.permutation(items), sizes


def _successors(
    rng: np.random.Generator,
    popularity: np.ndarray,
    by_topic: np.ndarray,
    sizes: np.ndarray,
    topic: np.ndarray,
    brand: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's successors and transition weights (zero weight marks an unused slot).

    Slot 0 is the next item of a cycle through the topic; the other slots are sampled without
    replacement from the topic (Gumbel top-k on log-weights), some replaced by catalogue draws.
    """
    items = len(popularity)
    width = SUCCESSORS[1]
    n_topics = len(sizes)
    topic_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    position = np.empty(items, dtype=np.int64)
    position[by_topic] = np.arange(items) - np.repeat(topic_start, sizes)
    members = np.full((n_topics, int(sizes.max())), -1, dtype=np.int64)
    members[topic[by_topic], position[by_topic]] = by_topic

    own = topic_start[topic]
    cycle = by_topic[own + (position + 1) % sizes[topic]]
    successors = np.empty((items, width), dtype=np.int64)
    successors[:, 0] = cycle
    log_pop = SUCCESSOR_POP * np.log(popularity)
    for rows in _chunks(items, 1 << 14):
        cand = members[topic[rows]]
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        keys = log_pop[safe] + rng.gumbel(size=cand.shape)
        keys += np.where(brand[safe] == brand[rows, None], math.log(SAME_BRAND), 0.0)
        excluded = ~valid | (cand == rows[:, None]) | (cand == cycle[rows, None])
        keys[excluded] = -np.inf
        take = min(width - 1, cand.shape[1])
        top = np.argpartition(-keys, take - 1, axis=1)[:, :take]
        picked = np.take_along_axis(cand, top, axis=1)
        picked[np.isneginf(np.take_along_axis(keys, top, axis=1))] = -1
        successors[rows, 1:] = -1
        successors[rows, 1 : 1 + take] = picked

    away = (rng.random((items, width - 1)) < OUT_OF_TOPIC) & (successors[:, 1:] >= 0)
    successors[:, 1:][away] = _draw(np.cumsum(popularity), rng.random(int(away.sum())))

    count = rng.integers(SUCCESSORS[0], SUCCESSORS[1] + 1, size=items)
    used = (np.arange(width) < count[:, None]) & (successors >= 0)
    used &= successors != np.arange(items)[:, None]
    used[:, 0] = True  # the cycle edge; a self-loop only in a one-item topic
    weights = rng.gamma(TRANSITION_SHAPE, size=(items, width)) * used
    return np.where(used, successors, 0), weights


def _chunks(total: int, size: int) -> list[np.ndarray]:
    """Index ranges that bound the memory of per-item candidate matrices."""
    return [np.arange(start, min(start + size, total)) for start in range(0, total, size)]


def _draw(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling; clipped because float rounding can leave cdf[-1] just below 1."""
    return np.minimum(np.searchsorted(cdf, uniform * cdf[-1], side="right"), len(cdf) - 1)


def _lengths(rng: np.random.Generator, users: int, mean_len: float) -> np.ndarray:
    """3 + negative binomial (skewed, mean `mean_len`), capped at 10 x mean_len."""
    extra = mean_len - MIN_LEN
    draws = rng.negative_binomial(LENGTH_SHAPE, LENGTH_SHAPE / (LENGTH_SHAPE + extra), users)
    return np.minimum(MIN_LEN + draws, int(MAX_LEN_FACTOR * mean_len)).astype(np.int64)


def _walk(rng: np.random.Generator, cat: _Catalogue, lengths: np.ndarray) -> np.ndarray:
    """Item indices of all sequences, concatenated in user order.

    Users are processed longest first, so the users still active at step t are a prefix.
    """
    order = np.argsort(-lengths, kind="stable")
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))[order]
    steps = np.arange(1, int(lengths.max()) + 1)
    active = np.searchsorted(-lengths[order], -steps, side="right")  # users with length > t
    out = np.empty(int(lengths.sum()), dtype=np.int64)

    current = _draw(cat.pop_cdf, rng.random(len(order)))
    home = cat.topic[current]
    out[offsets] = current
    for step in range(1, len(active)):
        n = int(active[step])
        current = _step(rng, cat, current[:n], home[:n])
        out[offsets[:n] + step] = current
    return out


def _step(
    rng: np.random.Generator, cat: _Catalogue, current: np.ndarray, home: np.ndarray
) -> np.ndarray:
    """One next item per user: successor, home-topic popularity draw, or catalogue draw."""
    n = len(current)
    choice = rng.random(n)
    nxt = np.empty(n, dtype=np.int64)

    follow = choice < FOLLOW
    src = current[follow]
    slot = (rng.random(len(src))[:, None] > cat.successor_cdf[src]).sum(axis=1)
    nxt[follow] = cat.successors[src, np.minimum(slot, cat.successors.shape[1] - 1)]

    in_home = ~follow & (choice < FOLLOW + (1 - FOLLOW) * HOME)
    target = home[in_home] + rng.random(int(in_home.sum()))
    pos = np.searchsorted(cat.topic_cdf, target, side="right")
    nxt[in_home] = cat.by_topic[np.minimum(pos, len(cat.by_topic) - 1)]

    anywhere = ~follow & ~in_home
    nxt[anywhere] = _draw(cat.pop_cdf, rng.random(int(anywhere.sum())))
    return nxt


def _timestamps(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """Unix-like seconds, strictly increasing within each user (gaps are >= 1 s)."""
    total = int(lengths.sum())
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    gaps = 1 + rng.exponential(MEAN_GAP_S, total).astype(np.int64)
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first], lengths)
    start = START_TS + rng.integers(0, SPAN_S, size=len(lengths))
    return np.repeat(start, lengths) + elapsed


def _attributes(rng: np.random.Generator, cat: _Catalogue) -> pl.DataFrame:
    """Long (item, attribute): topic, brand within topic, and 0-2 noise tags per item."""
    items = len(cat.topic)
    ids = np.arange(1, items + 1, dtype=np.int64)
    n_tags = int(np.clip(items // 50, 8, 200))
    tag_count = rng.integers(0, MAX_TAGS + 1, size=items)
    tag_items = np.repeat(ids, tag_count)
    tags = pl.DataFrame({"item": tag_items, "n": rng.integers(0, n_tags, size=len(tag_items))})
    base = pl.DataFrame({"item": ids, "t": cat.topic, "b": cat.brand})
    return (
        pl.concat(
            [
                base.select("item", attribute=pl.format("topic-{}", "t")),
                base.select("item", attribute=pl.format("brand-{}-{}", "t", "b")),
                tags.unique(maintain_order=True).select("item", attribute=pl.format("tag-{}", "n")),
            ]
        )
        .sort("item", maintain_order=True)
        .cast({"item": pl.Int64, "attribute": pl.String})
    )
