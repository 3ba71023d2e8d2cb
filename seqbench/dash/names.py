"""Names that tell the runs on screen apart, short enough for a 24-column chart legend.

Colour alone cannot tell two overlaid curves apart (a black-and-white screenshot, a colour-blind
reader), so every legend entry and stats row names its run. A run's name comes in levels, most
detailed first: its loss backend and seed (`ce[torch] s0`, plus the dataset, split or model
where those differ), then only what differs between the runs shown (`ce[torch]`), then shorter forms
of that (`ce`). At every level the runs shown together have different names, so a view may take
the most detailed level that fits its width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.cells import cell_len

from seqbench.dash.runs_model import TrackedRun

_PARTS = ("dataset", "split", "model", "backend", "seed")  # as the run list shows them
_ALWAYS = ("backend", "seed")  # what names a run when nothing else differs


def _parts(run: TrackedRun) -> dict[str, str]:
    return {"dataset": run.dataset, "split": run.split, "model": run.model,
            "backend": run.backend, "seed": f"s{run.seed}"}


def backend_family(backend: str) -> str:
    """The loss without its implementation: "cce[cuda-kernel]" -> "cce"."""
    return backend.split("[", 1)[0] or backend


def backend_initials(backend: str) -> str:
    """The implementation by its words' initials: "cce[cuda-kernel]" -> "cce[ck]"."""
    family, bracket, inner = backend.partition("[")
    if not bracket:
        return backend
    words = [word for word in inner.rstrip("]").replace("_", "-").split("-") if word]
    return f"{family}[{''.join(word[0] for word in words)}]"


def _run_tags(runs: Sequence[TrackedRun]) -> list[str]:
    """What tells apart runs of the same settings: the random tail of their id, else the id."""
    tails = [f"#{run.run_id.rsplit('-', 1)[-1]}" for run in runs]
    return tails if len(set(tails)) == len(tails) else [f"#{run.run_id}" for run in runs]


def name_levels(runs: Sequence[TrackedRun]) -> list[tuple[str, ...]]:
    """Per run, its names from most to least detailed; every run has as many levels.

    A level is kept only where its names are all different and shorter than the level
    before. A lone run has one level: its backend and seed, as `TrackedRun.short_name`.
    """
    if not runs:
        return []
    parts = [_parts(run) for run in runs]
    differing = [key for key in _PARTS if len({p[key] for p in parts}) > 1]

    def names(keys: Sequence[str], backend_form: Callable[[str], str] = str) -> list[str]:
        return [" ".join(backend_form(p[key]) if key == "backend" else p[key] for key in keys)
                for p in parts]

    first = names([key for key in _PARTS if key in _ALWAYS or key in differing])
    candidates: list[list[str]] = [first]
    if len(runs) > 1 and differing:
        candidates += [names(differing), names(differing, backend_family),
                       names(differing, backend_initials)]
    elif len(runs) > 1:  # the same settings twice, e.g. a rerun
        tags = _run_tags(runs)
        candidates = [[f"{name} {tag}" for name, tag in zip(first, tags, strict=True)], tags]
    levels = [candidates[0]]
    for level in candidates[1:]:
        unique = len(set(level)) == len(level)
        if unique and max(map(cell_len, level)) < max(map(cell_len, levels[-1])):
            levels.append(level)
    return [tuple(level[i] for level in levels) for i in range(len(runs))]
