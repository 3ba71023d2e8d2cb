"""The synthetic generator: determinism, schema, and the signal the benchmarks rely on."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from seqbench.data.raw import RawData
from seqbench.data.readers.synthetic import default_users, generate

ATTRIBUTE_NAME = re.compile(r"topic-\d+|brand-\d+-\d+|tag-\d+")


@pytest.fixture(scope="module")
def default_raw() -> RawData:
    """The default-size dataset (1000 items), shared by the signal tests."""
    return generate(seed=0)


def columns(raw: RawData) -> tuple[np.ndarray, np.ndarray]:
    return raw.interactions["user"].to_numpy(), raw.interactions["item"].to_numpy()


def transitions(raw: RawData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, previous item, next item) for every consecutive pair within a user."""
    users, items = columns(raw)
    same = users[1:] == users[:-1]
    return users[1:][same], items[:-1][same], items[1:][same]


def attribute_of(raw: RawData, items: int, kind: str) -> np.ndarray:
    """A code per item id for its `kind` attribute ("topic" or "brand"; index 0 unused)."""
    assert raw.attributes is not None
    rows = raw.attributes.filter(pl.col("attribute").str.starts_with(f"{kind}-"))
    _, codes = np.unique(rows["attribute"].to_numpy(), return_inverse=True)
    lookup = np.full(items + 1, -1, dtype=np.int64)
    lookup[rows["item"].to_numpy()] = codes
    return lookup


def test_same_seed_same_data_different_seed_different_data() -> None:
    first = generate(users=300, items=200, seed=7)
    again = generate(users=300, items=200, seed=7)
    other = generate(users=300, items=200, seed=8)
    assert_frame_equal(first.interactions, again.interactions)
    assert first.attributes is not None and again.attributes is not None
    assert_frame_equal(first.attributes, again.attributes)
    assert not first.interactions.equals(other.interactions)
    assert other.attributes is not None
    assert not first.attributes.equals(other.attributes)


def test_interactions_schema_and_order() -> None:
    raw = generate(users=500, items=300, mean_len=8.0, seed=1)
    frame = raw.interactions
    assert frame.schema == pl.Schema({"user": pl.Int64, "item": pl.Int64, "ts": pl.Int64})
    users, items = columns(raw)
    ts = frame["ts"].to_numpy()
    assert np.all(np.diff(users) >= 0), "rows must be grouped by user"
    assert set(np.unique(users)) == set(range(1, 501))
    assert items.min() >= 1 and items.max() <= 300
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(ts)[same_user] > 0), "ts must increase strictly within a user"
    assert ts.min() > 1_000_000_000  # unix-like seconds, not positions


@pytest.mark.parametrize("mean_len", [3.0, 8.0, 20.0])
def test_lengths(mean_len: float) -> None:
    users, _ = columns(generate(users=3000, items=200, mean_len=mean_len, seed=2))
    lengths = np.bincount(users)[1:]
    assert lengths.min() >= 3
    assert lengths.max() <= 10 * mean_len
    assert abs(lengths.mean() - mean_len) < 0.05 * mean_len
    if mean_len > 3:
        assert np.median(lengths) < lengths.mean(), "lengths should be right-skewed"


def test_default_users_scale_with_items() -> None:
    for items in (1000, 200_000):  # enough interactions per item for the tail to survive
        assert default_users(items) * 20 / items >= 30
    users, _ = columns(generate(items=3000, mean_len=4.0))
    assert users.max() == default_users(3000)


def test_attributes_schema_and_nesting() -> None:
    raw = generate(users=200, items=400, seed=3)
    attributes = raw.attributes
    assert attributes is not None
    assert attributes.schema == pl.Schema({"item": pl.Int64, "attribute": pl.String})
    assert attributes.is_duplicated().sum() == 0
    assert set(attributes["item"].unique()) == set(range(1, 401)), "every item has attributes"
    assert all(ATTRIBUTE_NAME.fullmatch(name) for name in attributes["attribute"].unique())
    per_item = attributes.group_by("item").agg(
        topic=pl.col("attribute").filter(pl.col("attribute").str.starts_with("topic-")),
        brand=pl.col("attribute").filter(pl.col("attribute").str.starts_with("brand-")),
        tags=pl.col("attribute").str.starts_with("tag-").sum(),
    )
    assert per_item["topic"].list.len().to_list() == [1] * 400
    assert per_item["brand"].list.len().to_list() == [1] * 400
    assert per_item["tags"].max() <= 2
    for topic, brand in zip(
        per_item["topic"].list.first(), per_item["brand"].list.first(), strict=True
    ):
        assert brand.startswith(topic.replace("topic-", "brand-") + "-"), (topic, brand)
    sizes = attributes.filter(pl.col("attribute").str.starts_with("topic-"))["attribute"]
    assert sizes.value_counts()["count"].min() >= 20, "topics hold 20-50 items"


def test_popularity_is_skewed_and_not_in_id_order(default_raw: RawData) -> None:
    _, items = columns(default_raw)
    counts = np.bincount(items, minlength=1001)[1:]
    top_share = np.sort(counts)[::-1][:100].sum() / counts.sum()
    assert top_share > 0.25, f"top 10% of items get {top_share:.0%} (uniform would be 10%)"
    ranks = np.argsort(np.argsort(-counts))
    rho = np.corrcoef(np.arange(1000), ranks)[0, 1]
    assert abs(rho) < 0.2, f"popularity follows id order (Spearman {rho:.2f})"


def test_previous_item_predicts_next_better_than_popularity(default_raw: RawData) -> None:
    """Most frequent successors of the previous item (learnt on half the users) vs most
    popular, both @10, on the other users' last items."""
    users, prev, nxt = transitions(default_raw)
    train = users <= users.max() // 2
    follows = pl.DataFrame({"prev": prev[train], "next": nxt[train]})
    top_next = (
        follows.group_by("prev", "next")
        .len()
        .sort(["prev", "len", "next"], descending=[False, True, False])
        .group_by("prev", maintain_order=True)
        .head(10)
    )
    known = set(zip(top_next["prev"].to_list(), top_next["next"].to_list(), strict=True))
    popular = set(np.argsort(-np.bincount(nxt[train]))[:10].tolist())

    last = np.r_[users[1:] != users[:-1], True] & ~train
    pairs = list(zip(prev[last].tolist(), nxt[last].tolist(), strict=True))
    sequential = np.mean([pair in known for pair in pairs])
    most_popular = np.mean([target in popular for _, target in pairs])
    assert sequential > 0.5
    assert sequential > most_popular + 0.3, (sequential, most_popular)


def test_consecutive_items_share_topic_and_brand(default_raw: RawData) -> None:
    """Attributes predict transitions: the topic strongly, the brand also within a topic."""
    _, prev, nxt = transitions(default_raw)
    topic = attribute_of(default_raw, 1000, "topic")
    brand = attribute_of(default_raw, 1000, "brand")
    consecutive = np.mean(topic[prev] == topic[nxt])
    rng = np.random.default_rng(0)
    _, items = columns(default_raw)
    first, second = rng.choice(items, 200_000), rng.choice(items, 200_000)
    random_pairs = np.mean(topic[first] == topic[second])
    assert consecutive > 0.5
    assert consecutive > 5 * random_pairs, (consecutive, random_pairs)

    in_topic = topic[prev] == topic[nxt]
    random_in_topic = topic[first] == topic[second]
    brand_given_topic = np.mean(brand[prev][in_topic] == brand[nxt][in_topic])
    random_brand = np.mean(brand[first][random_in_topic] == brand[second][random_in_topic])
    assert brand_given_topic > 1.5 * random_brand, (brand_given_topic, random_brand)


@pytest.mark.parametrize(("items", "share"), [(3000, 0.95), (20_000, 0.98)])
def test_tail_is_visited(items: int, share: float) -> None:
    """With default users, nearly every item survives a 3-core filter, also at scale (the
    share shrinks slowly with the catalogue: 99% of items at 200k)."""
    _, seen = columns(generate(items=items, seed=4))
    counts = np.bincount(seen, minlength=items + 1)[1:]
    assert np.mean(counts >= 3) >= share
