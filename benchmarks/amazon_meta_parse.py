"""How fast does `read_amazon_meta` read a meta_Beauty-shaped file, against `ast.literal_eval`?

Generates a file with meta_Beauty.json's shape (259,204 Python dict literals, ~1 KB each,
`related` lists of 20-100 asins, ~15% of lines with a double-quoted string or backslash
escapes, plus a few with None), writes it plain and gzipped under a temporary folder, times
the reader on both (best of --repeat, in this process), and times `ast.literal_eval` on a
random sample of lines, extrapolated to the whole file. The sample is also checked: the
reader's rows must equal literal_eval's. Target: the whole file in a few seconds.

    python benchmarks/amazon_meta_parse.py [--lines 259204] [--sample 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ast
import gzip
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from seqbench.data.readers import amazon_meta

META_BEAUTY_LINES = 259_204
_WORDS = (
    "gentle",
    "daily",
    "cream",
    "for",
    "dry",
    "skin",
    "with",
    "natural",
    "oils",
    "and",
    "vitamin",
    "e",
    "leaves",
    "hair",
    "soft",
    "shiny",
    "fresh",
    "scent",
    "paraben",
    "free",
    "formula",
    "lasting",
    "color",
    "smooth",
    "finish",
)
_TRICKY = (
    "It's the best",
    'She said "wow"',
    "L'Oreal Paris",
    'Men\'s "classic" cut',
    "line one\nline two",
    "50\xa0ml",
    "back\\slash",
    "caf\xe9 na\u00efve \u2019",
    "zero\u200bwidth",
    "tab\there",
)
_CATEGORIES = (
    ["Beauty", "Skin Care", "Face", "Creams & Moisturizers"],
    ["Beauty", "Makeup", "Eyes", "Mascara"],
    ["Beauty", "Hair Care", "Shampoos"],
    ["Beauty", "Fragrance", "Women", "Eau de Parfum"],
    ["Beauty", "Tools & Accessories"],
)
_BRANDS = ("Nivea", "Maybelline", "Olay", "Neutrogena", "Revlon", "", "Burt's Bees", "OPI")


def meta_beauty_like(path: Path, lines: int, seed: int = 0) -> None:
    """Write `lines` meta_Beauty-shaped Python dict literals (as `repr` writes them)."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    pool = [
        "'B00" + "".join(chars) + "'"
        for chars in alphabet[rng.integers(0, len(alphabet), size=(max(lines, 1000), 7))]
    ]
    tricky = rng.random(lines) < 0.15
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            out.write(_line(rng, pool, i, bool(tricky[i])) + "\n")


def _line(rng: np.random.Generator, pool: list[str], i: int, tricky: bool) -> str:
    words = " ".join(_WORDS[j] for j in rng.integers(0, len(_WORDS), size=rng.integers(5, 80)))
    title = " ".join(_WORDS[j] for j in rng.integers(0, len(_WORDS), size=6))
    if tricky:
        extra = _TRICKY[rng.integers(0, len(_TRICKY))]
        if rng.random() < 0.3:
            title = extra + " " + title
        else:
            words += " " + extra
    parts = [f"'asin': {pool[i]}"]
    if rng.random() < 0.7:
        parts.append(f"'description': {words!r}")
    parts.append(f"'title': {title!r}")
    if rng.random() < 0.6:
        parts.append(f"'price': {rng.uniform(1, 80):.2f}")
    parts.append(f"'imUrl': 'http://ecx.images-amazon.com/images/I/{i:011d}.jpg'")
    related = []
    for key, low, high in (
        ("also_bought", 20, 100),
        ("also_viewed", 0, 40),
        ("bought_together", 0, 3),
    ):
        size = int(rng.integers(low, high + 1))
        if size:
            picks = rng.integers(0, len(pool), size=size)
            related.append(f"'{key}': [{', '.join(pool[j] for j in picks)}]")
    if related and rng.random() < 0.9:
        parts.append("'related': {" + ", ".join(related) + "}")
    parts.append(f"'salesRank': {{'Beauty': {int(rng.integers(1, 300_000))}}}")
    paths = [_CATEGORIES[j] for j in rng.choice(len(_CATEGORIES), rng.integers(1, 3), False)]
    parts.append(f"'categories': {paths!r}")
    if rng.random() < 0.4:
        parts.append(f"'brand': {_BRANDS[rng.integers(0, len(_BRANDS))]!r}")
    elif rng.random() < 0.01:
        parts.append("'brand': None")
    return "{" + ", ".join(parts) + "}"


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        tick = time.perf_counter()
        run()
        times.append(time.perf_counter() - tick)
    return min(times)


def slow_line_count(path: Path) -> tuple[pl.DataFrame, int]:
    """Read once, counting the lines that went to `literal_eval` (the slow path)."""
    original = amazon_meta._literal_eval_rows
    count = 0

    def counting(source: Path, lines: pl.DataFrame) -> pl.DataFrame:
        nonlocal count
        count += lines.height
        return original(source, lines)

    amazon_meta._literal_eval_rows = counting
    try:
        return amazon_meta.read_amazon_meta(path), count
    finally:
        amazon_meta._literal_eval_rows = original


def literal_eval_sample(
    path: Path, frame: pl.DataFrame, size: int, seed: int = 1
) -> tuple[float, int]:
    """Seconds per line of `ast.literal_eval` on a random sample; checks the reader agrees."""
    lines = path.read_text(encoding="utf-8").splitlines()
    picks = np.random.default_rng(seed).choice(
        len(lines), size=min(size, len(lines)), replace=False
    )
    sample = [lines[i] for i in picks]
    tick = time.perf_counter()
    records = [ast.literal_eval(line) for line in sample]
    per_line = (time.perf_counter() - tick) / len(sample)
    got = frame[picks.tolist()].rows()
    expected = [(r["asin"], r.get("brand"), r.get("categories") or []) for r in records]
    return per_line, sum(g != e for g, e in zip(got, expected, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=META_BEAUTY_LINES)
    parser.add_argument("--sample", type=int, default=5000, help="lines for literal_eval")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="seqbench-meta-bench-"))
    try:
        plain, packed = work / "meta_Beauty.json", work / "meta_Beauty.json.gz"
        tick = time.perf_counter()
        meta_beauty_like(plain, args.lines)
        with plain.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        mib = plain.stat().st_size / 2**20
        escaped = sum(1 for line in plain.open(encoding="utf-8") if '"' in line or "\\" in line)
        console.print(
            f'generated {args.lines:,} lines ({escaped / args.lines:.0%} with a " '
            f"or a backslash), {mib:,.0f} MiB "
            f"({packed.stat().st_size / 2**20:,.0f} MiB gzipped) in "
            f"{time.perf_counter() - tick:.1f} s"
        )

        frame, slow = slow_line_count(plain)
        fast_share = 1 - slow / max(frame.height, 1)
        per_line, disagree = literal_eval_sample(plain, frame, args.sample)

        sample = min(args.sample, frame.height)
        table = Table(
            title=f"Amazon meta reading, {pl.thread_pool_size()} polars threads",
            caption=f"literal_eval: {sample:,} random lines, extrapolated",
        )
        for column in ("reader", "lines", "MiB", "seconds", "lines/s", "fast path"):
            table.add_column(column, justify="left" if column == "reader" else "right")
        for label, path in (
            ("read_amazon_meta, .json", plain),
            ("read_amazon_meta, .json.gz", packed),
        ):
            seconds = best_of(args.repeat, lambda p=path: amazon_meta.read_amazon_meta(p))
            table.add_row(
                label,
                f"{frame.height:,}",
                f"{mib:,.0f}",
                f"{seconds:.2f}",
                f"{frame.height / seconds:,.0f}",
                f"{fast_share:.1%}",
            )
        total = per_line * frame.height
        table.add_row(
            "ast.literal_eval",
            f"{frame.height:,}",
            f"{mib:,.0f}",
            f"{total:.1f}",
            f"{1 / per_line:,.0f}",
            "-",
        )
        console.print(table)
        console.print(f"sample check: {disagree} of {sample:,} rows differ from ast.literal_eval")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
