"""The statistics table `seqbench prep` prints."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from seqbench.data.prep import PrepResult


def prep_table(result: PrepResult) -> Table:
    meta = result.dataset.meta
    stats, options = meta["stats"], meta["options"]
    table = Table(
        title=f"{meta['dataset']} — {meta['description']}", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    for role, source in meta["sources"].items():
        table.add_row(
            f"source ({role})",
            f"{Path(source['path']).name}  "
            f"{source['size'] / 2**20:,.1f} MiB  "
            f"sha256 {source['sha256'][:12]}",
        )
    extra = {k: v for k, v in options.items() if k not in ("min_user", "min_item", "dedupe")}
    if extra:
        table.add_row("options", ", ".join(f"{k}={v}" for k, v in extra.items()))
    table.add_row("users", f"{stats['users']:,}")
    table.add_row("items", f"{stats['items']:,}")
    table.add_row("interactions", f"{stats['interactions']:,}")
    table.add_row(
        "sequence length",
        f"mean {stats['mean_length']:.2f}, median "
        f"{stats['median_length']:g} (min {stats['min_length']}, "
        f"max {stats['max_length']})",
    )
    split = meta.get("split") or {"split": "loo"}
    if split["split"] == "temporal":
        table.add_row("split", f"temporal: validation from {split['valid_cutoff_utc']}, test "
                      f"from {split['test_cutoff_utc']}")
        table.add_row("train", f"{split['train_interactions']:,} interactions before the "
                      f"validation cut-off, {split['train_users']:,} users")
        for window in ("valid", "test"):
            table.add_row(
                f"{window} window",
                f"{split[f'{window}_users']:,} users, {split[f'{window}_targets']:,} targets; "
                f"not evaluated: {split[f'cold_{window}_targets']:,} cold (item unknown "
                f"to training), {split[f'{window}_targets_without_history']:,} of users with no "
                f"earlier interaction")
    else:
        table.add_row("split", f"leave-one-out: {stats['users_with_holdout']:,} users with a "
                      f"validation and a test item")
    if "attributes" in stats:
        table.add_row(
            "attributes",
            f"{stats['attributes']:,} "
            f"({stats['items_with_attributes']:,} items have some, "
            f"mean {stats['mean_attributes_per_item']:.2f} per item)",
        )
    else:
        table.add_row("attributes", "none")
    table.add_row(
        "filters",
        f"min user {options['min_user']}, min item {options['min_item']} "
        f"(k-core to a fixed point in {stats['kcore_rounds']} rounds), "
        f"{'duplicates dropped' if options['dedupe'] else 'duplicates kept'}",
    )
    table.add_row(
        "rows",
        f"{stats['rows_read']:,} read, "
        f"{stats['rows_removed_by_filters']:,} removed by filters, "
        f"{stats['duplicates_removed']:,} duplicates removed",
    )
    table.add_row("cache", f"{result.dataset.path}")
    if result.reused:
        table.add_row(
            "time",
            f"{result.seconds:.2f} s — reused the cache (built "
            f"{meta['created']}), nothing recomputed",
        )
    else:
        steps = ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in result.timings.items())
        table.add_row("time", f"{result.seconds:.2f} s ({steps})")
    return table
