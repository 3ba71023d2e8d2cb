"""The datasets seqbench knows by name: which files they need, how to read them, default filters.

A preset is data, not code: the reader it names lives in `seqbench.data.readers`, and adding a
dataset means adding one entry here (plus a reader if the format is new).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqbench.errors import SeqbenchError

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
SNAP_AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"


@dataclass(frozen=True)
class FileRole:
    """One input file a dataset needs, recognised by its name."""

    role: str
    patterns: tuple[str, ...]
    required: bool = True
    help: str = ""


@dataclass(frozen=True)
class Download:
    """Where a public dataset file comes from and how to check it.

    `md5` is the checksum published for the downloaded file (GroupLens publishes one per
    archive). For a zip archive, `members` maps a role to the path inside the archive and
    `member_sha256` optionally pins the extracted file. Without any published checksum the
    download is still checked for completeness (length, gzip CRC) and its sha256 recorded.
    """

    url: str
    md5: str | None = None
    members: dict[str, str] = field(default_factory=dict)
    member_sha256: dict[str, str] = field(default_factory=dict)
    role: str | None = None  # for a plain (non-archive) file: the role it fills

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    reader: str
    roles: tuple[FileRole, ...]
    min_user: int
    min_item: int
    dedupe: bool = False
    downloads: tuple[Download, ...] = ()


def _movielens(
    name: str,
    reader: str,
    filename: str,
    md5: str | None,
    description: str,
    member_sha256: str | None = None,
) -> Preset:
    return Preset(
        name=name,
        description=description,
        reader=reader,
        roles=(FileRole("ratings", (filename,), help=f"{name}/{filename} from the GroupLens zip"),),
        min_user=3,
        min_item=3,
        downloads=(
            Download(
                url=f"{GROUPLENS}{name}.zip",
                md5=md5,
                members={"ratings": f"{name}/{filename}"},
                member_sha256={"ratings": member_sha256} if member_sha256 else {},
            ),
        ),
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="synthetic",
            description="generated sequences with item attributes (no files; sizes are options)",
            reader="synthetic",
            roles=(),
            min_user=3,
            min_item=3,
        ),
        _movielens(
            "ml-20m",
            "movielens-csv",
            "ratings.csv",
            "cd245b17a1ae2cc31bb14903e1204af3",
            "MovieLens 20M ratings (CCE experiment)",
        ),
        _movielens(
            "ml-latest-small",
            "movielens-csv",
            "ratings.csv",
            None,
            "MovieLens latest-small (2018)",
            member_sha256="80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8",
        ),
        _movielens(
            "ml-1m",
            "movielens-dat",
            "ratings.dat",
            "c4d9eecfca2ab87c1945afe126590906",
            "MovieLens 1M ratings (`::`-separated)",
        ),
        _movielens(
            "ml-100k",
            "movielens-tab",
            "u.data",
            "0e33842e24a9c977be4e0107933c0723",
            "MovieLens 100K ratings (tab-separated)",
        ),
        Preset(
            name="beauty",
            description="Amazon 2014 Beauty ratings-only CSV, 3-core (CCE experiment)",
            reader="amazon-ratings",
            roles=(
                FileRole(
                    "ratings",
                    ("ratings_*.csv", "*.csv"),
                    help="ratings_Beauty.csv (user,item,rating,unix_ts)",
                ),
            ),
            min_user=3,
            min_item=3,
            downloads=(Download(url=f"{SNAP_AMAZON_2014}ratings_Beauty.csv", role="ratings"),),
        ),
        Preset(
            name="beauty-5core",
            description="Amazon 2014 Beauty 5-core reviews + metadata with attributes (S3Rec)",
            reader="amazon-5core",
            roles=(
                FileRole(
                    "reviews",
                    ("reviews_*.json", "reviews_*.json.gz"),
                    help="reviews_Beauty_5.json[.gz] (JSON lines)",
                ),
                FileRole(
                    "meta",
                    ("meta_*.json", "meta_*.json.gz"),
                    help="meta_Beauty.json[.gz] (one Python dict literal per line)",
                ),
            ),
            min_user=5,
            min_item=5,
            downloads=(
                Download(url=f"{SNAP_AMAZON_2014}reviews_Beauty_5.json.gz", role="reviews"),
                Download(url=f"{SNAP_AMAZON_2014}meta_Beauty.json.gz", role="meta"),
            ),
        ),
        Preset(
            name="s3rec",
            description="S3-Rec authors' preprocessed format (Beauty.txt + item2attributes.json)",
            reader="s3rec",
            roles=(
                FileRole("sequences", ("*.txt",), help="Beauty.txt: `user item item ...` per line"),
                FileRole(
                    "attributes",
                    ("*_item2attributes.json", "*item2attributes*.json"),
                    required=False,
                    help="Beauty_item2attributes.json",
                ),
            ),
            min_user=0,
            min_item=0,
        ),
        Preset(
            name="generic",
            description="any CSV/TSV/Parquet/JSONL file; choose columns with --user-col, "
            "--item-col, --time-col",
            reader="generic",
            roles=(FileRole("interactions", ("*",), help="a .csv, .tsv, .parquet or .jsonl file"),),
            min_user=0,
            min_item=0,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or an error that lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise SeqbenchError(f"unknown dataset {name!r}; known datasets: {known}") from None
