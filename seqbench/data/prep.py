"""`prep` as a function: resolve source files, reuse or build the cache entry, load it.

Everything a command needs to get a training-ready `Dataset` from a `DataConfig` goes through
`prepare`, so `bench`, `pretrain` and `prep` itself share one path (and one cache).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench import __version__
from seqbench.config import DataConfig
from seqbench.data.cache import cache_key, file_sha256, sequence_stats, write_arrays
from seqbench.data.dataset import Dataset
from seqbench.data.pipeline import build
from seqbench.data.presets import Preset, get_preset
from seqbench.data.read import read
from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_json, commit, staging_dir

log = logging.getLogger(__name__)


@dataclass
class PrepResult:
    dataset: Dataset
    reused: bool
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def prepare(
    config: DataConfig, *, console: Any = None, step: Callable[[str], None] | None = None
) -> PrepResult:
    """The cached dataset for `config`, built first if no matching cache entry exists.

    `step` hears what is happening now (for a status line); `console` shows download bars.
    """
    announce = step or (lambda text: None)
    started = time.perf_counter()
    preset = get_preset(config.dataset)
    options = resolved_options(preset, config)
    files = resolve_sources(preset, config, console=console)
    announce("checksumming sources")
    sources = {
        role: {
            "path": str(path.resolve()),
            "size": path.stat().st_size,
            "sha256": file_sha256(path),
        }
        for role, path in files.items()
    }
    key = cache_key(
        {
            "dataset": preset.name,
            "reader": preset.reader,
            "options": options,
            "sources": {role: s["sha256"] for role, s in sources.items()},
        }
    )
    root = config.cache_root / "prepared"
    entry = root / f"{preset.name}-{key[:16]}"
    if (entry / "meta.json").is_file():
        log.info("reusing cached %s dataset %s", preset.name, entry)
        return PrepResult(Dataset.load(entry), reused=True, seconds=time.perf_counter() - started)

    timings: dict[str, float] = {}
    with staging_dir(root, entry.name) as staging:
        tick = time.perf_counter()
        announce("reading" if files else "generating")
        raw = read(preset, files, config)
        timings["read"] = time.perf_counter() - tick
        tick = time.perf_counter()
        announce("filtering, mapping ids, ordering")
        prepared = build(
            raw,
            min_user=options["min_user"],
            min_item=options["min_item"],
            dedupe=options["dedupe"],
        )
        del raw
        timings["filter_and_map"] = time.perf_counter() - tick
        if len(prepared.items) == 0:
            raise SeqbenchError(
                f"{preset.name}: no interactions left after filtering (min_user="
                f"{options['min_user']}, min_item={options['min_item']}, "
                f"{prepared.stats['rows_read']:,} rows read); lower --min-user/--min-item"
            )
        tick = time.perf_counter()
        announce("writing the cache")
        write_arrays(prepared, staging)
        timings["write"] = time.perf_counter() - tick
        meta = {
            "dataset": preset.name,
            "description": preset.description,
            "key": key,
            "options": options,
            "sources": sources,
            "stats": {**sequence_stats(prepared), **prepared.stats},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seqbench_version": __version__,
            "timings": timings,
        }
        atomic_write_json(staging / "meta.json", meta)
        if not commit(staging, entry):
            log.info("another process prepared %s first; using its entry", entry)
    return PrepResult(
        Dataset.load(entry), reused=False, seconds=time.perf_counter() - started, timings=timings
    )


def resolved_options(preset: Preset, config: DataConfig) -> dict[str, Any]:
    """The options that shape the data, with the preset's defaults filled in (the cache key)."""
    options: dict[str, Any] = {
        "min_user": preset.min_user if config.min_user is None else config.min_user,
        "min_item": preset.min_item if config.min_item is None else config.min_item,
        "dedupe": preset.dedupe if config.dedupe is None else config.dedupe,
    }
    for name in ("min_user", "min_item"):
        if options[name] < 0:
            raise SeqbenchError(f"--{name.replace('_', '-')} must be >= 0, got {options[name]}")
    if preset.reader == "synthetic":
        from seqbench.data.readers.synthetic import default_users

        users = config.users if config.users is not None else default_users(config.items)
        options.update(seed=config.seed, users=users, items=config.items, mean_len=config.mean_len)
    if preset.reader == "generic":
        options.update(user_col=config.user_col, item_col=config.item_col, time_col=config.time_col)
    return options


def resolve_sources(preset: Preset, config: DataConfig, *, console: Any = None) -> dict[str, Path]:
    """Role -> file for `preset`, from --source, from --download, or from earlier downloads."""
    if not preset.roles:
        if config.source:
            raise SeqbenchError(f"{preset.name} is generated and takes no --source")
        return {}
    if config.source and config.download:
        raise SeqbenchError("give either --source or --download, not both")
    if config.source:
        return assign_roles(preset, [Path(p).expanduser() for p in config.source])
    raw_dir = config.cache_root / "raw" / preset.name
    if config.download:
        return download_sources(preset, raw_dir, console=console)
    if raw_dir.is_dir():
        found = [
            p
            for p in raw_dir.iterdir()
            if p.is_file() and not p.name.endswith(".part") and p.name != "downloads.json"
        ]
        try:
            return assign_roles(preset, found)
        except SeqbenchError:
            pass
    needs = "; ".join(r.help or r.role for r in preset.roles if r.required)
    hint = " or --download" if preset.downloads else ""
    raise SeqbenchError(f"{preset.name} needs source files ({needs}): pass --source PATH{hint}")


def download_sources(preset: Preset, raw_dir: Path, *, console: Any = None) -> dict[str, Path]:
    from seqbench.data.download import fetch, mirror_from_env

    if not preset.downloads:
        raise SeqbenchError(f"{preset.name} has no public download; pass --source PATH")
    files: dict[str, Path] = {}
    for download in preset.downloads:
        files.update(fetch(download, raw_dir, console=console, mirror=mirror_from_env()))
    return files


def assign_roles(preset: Preset, paths: list[Path]) -> dict[str, Path]:
    """Match files (or the files inside given directories) to the roles a preset needs."""
    candidates: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates.extend(sorted(p for p in path.iterdir() if p.is_file()))
        elif path.is_file():
            candidates.append(path)
        else:
            raise SeqbenchError(f"{path}: source file not found")
    if len(preset.roles) == 1 and len(paths) == 1 and len(candidates) == 1:
        return {preset.roles[0].role: candidates[0]}
    files: dict[str, Path] = {}
    for role in preset.roles:
        matches = [
            p for p in candidates if any(fnmatch.fnmatch(p.name, pat) for pat in role.patterns)
        ]
        matches = [p for p in matches if p not in files.values()]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise SeqbenchError(
                f"{preset.name}: several files could be the {role.role} file "
                f"({names}); pass exactly one"
            )
        if matches:
            files[role.role] = matches[0]
        elif role.required:
            pats = ", ".join(role.patterns)
            raise SeqbenchError(
                f"{preset.name} needs its {role.role} file ({role.help}); no source matches {pats}"
            )
    extra = [p for p in paths if p.is_file() and p not in files.values()]
    if extra:
        raise SeqbenchError(
            f"{extra[0]}: not a file {preset.name} uses (it needs: "
            f"{', '.join(r.help or r.role for r in preset.roles)})"
        )
    return files
