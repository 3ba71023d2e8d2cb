"""`prep` as a function: resolve source files, reuse or build the cache entry, load it.

Everything a command needs to get a training-ready `Dataset` from a `DataConfig` goes through
`prepare`, so `bench`, `pretrain` and `prep` itself share one path (and one cache).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench import __version__
from seqbench.config import DataConfig
from seqbench.data.cache import cache_key, file_sha256, sequence_stats, write_arrays
from seqbench.data.dataset import Dataset
from seqbench.data.pipeline import TemporalSplit, build
from seqbench.data.presets import FileRole, Preset, get_preset
from seqbench.data.read import read
from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_json, commit, staging_dir, writable_dir

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
    The settings are checked first (`DataConfig.validate`), whoever calls.
    """
    config.validate()
    announce = step or (lambda text: None)
    started = time.perf_counter()
    preset = get_preset(config.dataset)
    options = resolved_options(preset, config)
    files = resolve_sources(preset, config, console=console)
    if not config.cache_root.is_dir():
        writable_cache_root(config)  # nothing to reuse: fail now, not after checksumming
    announce("checksumming sources")
    sources = {
        role: {
            "path": str(path.resolve()),
            "size": path.stat().st_size,
            "sha256": file_sha256(path),
        }
        for role, path in files.items()
    }
    material: dict[str, Any] = {
        "dataset": preset.name,
        "reader": preset.reader,
        "options": options,
        "sources": {role: s["sha256"] for role, s in sources.items()},
    }
    temporal = _temporal(config)
    if temporal is not None:  # leave-one-out keeps the key it always had
        material["split"] = {"split": "temporal", **config.cutoffs()}
    key = cache_key(material)
    root = config.cache_root / "prepared"
    entry = root / f"{preset.name}-{key[:16]}"
    if (entry / "meta.json").is_file():
        log.info("reusing cached %s dataset %s", preset.name, entry)
        return PrepResult(Dataset.load(entry), reused=True, seconds=time.perf_counter() - started)

    timings: dict[str, float] = {}
    writable_cache_root(config)
    with staging_dir(root, entry.name) as staging:
        tick = time.perf_counter()
        announce("reading" if files else "generating")
        raw = read(preset, files, config)
        timings["read"] = time.perf_counter() - tick
        if temporal is not None and not raw.timed:
            raise SeqbenchError(
                f"--split temporal: {preset.name} has no interaction times (its files give "
                f"only the order of each user's items); use --split loo"
            )
        tick = time.perf_counter()
        announce("filtering, mapping ids, ordering")
        prepared = build(
            raw,
            min_user=options["min_user"],
            min_item=options["min_item"],
            dedupe=options["dedupe"],
            temporal=temporal,
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
        try:
            write_arrays(prepared, staging)
            timings["write"] = time.perf_counter() - tick
            meta = {
                "dataset": preset.name,
                "description": preset.description,
                "key": key,
                "options": options,
                "sources": sources,
                "stats": {**sequence_stats(prepared), **prepared.stats},
                "split": prepared.split,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "seqbench_version": __version__,
                "timings": timings,
            }
            atomic_write_json(staging / "meta.json", meta)
        except OSError as exc:  # e.g. the disk filled up; the staging directory goes away
            raise SeqbenchError(
                f"{root}: cannot write the prepared dataset ({exc.strerror or exc})"
            ) from None
        if not commit(staging, entry):
            log.info("another process prepared %s first; using its entry", entry)
    return PrepResult(
        Dataset.load(entry), reused=False, seconds=time.perf_counter() - started, timings=timings
    )


def _temporal(config: DataConfig) -> TemporalSplit | None:
    if config.split != "temporal":
        return None
    return TemporalSplit(**config.cutoffs())


def writable_cache_root(config: DataConfig) -> Path:
    """The cache directory, created if needed and checked writable before anything goes there.

    A directory that cannot be made (`/proc/x`, a path below a file) or written in is then one
    line that names it, where it came from, and what to do, instead of an OSError traceback.
    """
    from_env = config.data_dir is None and bool(os.environ.get("SEQBENCH_CACHE"))
    return writable_dir(
        config.cache_root,
        "cache directory" + (" (from $SEQBENCH_CACHE)" if from_env else ""),
        hint="; choose another with --data-dir or $SEQBENCH_CACHE",
    )


def resolved_options(preset: Preset, config: DataConfig) -> dict[str, Any]:
    """The options that shape the data, with the preset's defaults filled in (the cache key)."""
    options: dict[str, Any] = {
        "min_user": preset.min_user if config.min_user is None else config.min_user,
        "min_item": preset.min_item if config.min_item is None else config.min_item,
        "dedupe": preset.dedupe if config.dedupe is None else config.dedupe,
    }
    if preset.reader == "synthetic":
        from seqbench.data.readers.synthetic import default_users

        users = config.users if config.users is not None else default_users(config.items)
        # the key is named `seed` in the cache key as in 0.1.0, so existing caches still match
        options.update(seed=config.data_seed, users=users, items=config.items,
                       mean_len=config.mean_len)
    if preset.reader == "generic":
        options.update(user_col=config.user_col, item_col=config.item_col, time_col=config.time_col)
    return options


def resolve_sources(preset: Preset, config: DataConfig, *, console: Any = None) -> dict[str, Path]:
    """Role -> file for `preset`, from --source, from --download, or from earlier downloads."""
    if not preset.roles:
        if config.source:
            raise SeqbenchError(f"{preset.name} is generated and takes no --source")
        return {}
    if config.source:
        return assign_roles(preset, [Path(p).expanduser() for p in config.source])
    raw_dir = config.cache_root / "raw" / preset.name
    if config.download:
        if preset.downloads:
            writable_cache_root(config)
        return download_sources(preset, raw_dir, console=console)
    if raw_dir.is_dir():
        # Earlier downloads: files found there must match the roles' names (an archive next
        # to what was extracted from it is no candidate).
        found = [
            p
            for p in _files_in(raw_dir)
            if not p.name.endswith(".part") and p.name != "downloads.json"
        ]
        try:
            return _match_roles(preset, named=[], found=found, directories=[raw_dir])
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
    """Match files (or the files inside given directories) to the roles a preset needs.

    A file named on the command line is the user's choice: alone, for a preset with one role,
    it fills that role whatever its name (people rename files). Files found by looking inside
    a directory must match a role's name patterns, so a directory without the expected file
    says what was looked for instead of parsing some other file as the dataset.
    """
    named: list[Path] = []
    found: list[Path] = []
    directories: list[Path] = []
    for path in paths:
        if path.is_dir():
            directories.append(path)
            found.extend(_files_in(path))
        elif path.is_file():
            named.append(path)
        else:
            raise SeqbenchError(f"{path}: source file not found")
    if len(preset.roles) == 1 and len(paths) == 1 and named:
        return {preset.roles[0].role: named[0]}
    return _match_roles(preset, named=named, found=found, directories=directories)


def _files_in(directory: Path) -> list[Path]:
    """The files a directory offers as sources: sorted, hidden ones (`.DS_Store`) left out."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def _match_roles(
    preset: Preset, *, named: list[Path], found: list[Path], directories: list[Path]
) -> dict[str, Path]:
    """Role -> file by the roles' name patterns; every `named` file must fill a role."""
    candidates = [*named, *found]
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
            raise _missing_role(preset, role, candidates, directories)
    extra = [p for p in named if p not in files.values()]
    if extra:
        raise SeqbenchError(
            f"{extra[0]}: not a file {preset.name} uses (it needs: "
            f"{', '.join(r.help or r.role for r in preset.roles)})"
        )
    return files


def _missing_role(
    preset: Preset, role: FileRole, candidates: list[Path], directories: list[Path]
) -> SeqbenchError:
    """No source fits `role`: name where we looked, the file names we wanted, what was there."""
    if len(role.patterns) == 1 and not any(ch in role.patterns[0] for ch in "*?["):
        wanted = f"no file named {role.patterns[0]!r}"
    else:
        wanted = "no file matching " + " or ".join(repr(p) for p in role.patterns)
    needs = f"{preset.name} needs its {role.role} file" + (f", {role.help}" if role.help else "")
    if not directories:
        return SeqbenchError(f"{needs}; {wanted} among the sources given")
    where = ", ".join(str(d) for d in directories)
    here = "this directory" if len(directories) == 1 else "these directories"
    shown = ", ".join(p.name for p in candidates[:5]) + (", ..." if len(candidates) > 5 else "")
    holds = f"found only {shown}" if candidates else "found no files"
    return SeqbenchError(f"{where}: {wanted} in {here} ({needs}); {holds}")
