"""Built-in experiments for the questions the method raises, each one command (``hce experiment new --recipe``)
or one click (the Experiments page).

Each recipe is a set of arms on top of a preset; the seeds, the preset and shared settings are the user's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import ExperimentSpec


@dataclass(frozen=True)
class Recipe:
    """A named experiment: the question, what its result shows, its arms and control, and its plot
    ("metric": the headline metric per arm with error bars; "recall": R@1 against R@100 per arm)."""
    name: str
    question: str
    shows: str
    arms: dict[str, dict[str, Any]]
    control: str
    settings: dict[str, Any] = field(default_factory=dict)
    plot: str = "metric"


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("negatives", "Do tree siblings beat random negatives of the same count?",
           "Each pair gets the same number of extra negatives: documents of the positive's leaf (HCE's siblings) "
           "or random documents; in-batch adds none (only the batch's other positives). A sibling gain above "
           "seed noise means the tree's hard negatives, not their number, teach the encoder.",
           {"random": {"negatives": "random"}, "siblings": {"negatives": "siblings"},
            "in-batch": {"negatives": "in-batch"}}, control="random"),
    Recipe("branching", "Which branching factor?",
           "A small b makes deep trees of few, close siblings; a large b shallow trees with many, looser ones. "
           "The plot puts R@1 (the top hit) against R@100 (what a re-ranker would see) per b.",
           {f"b{b}": {"branching": b} for b in (4, 10, 32, 64)}, control="b10", plot="recall"),
    Recipe("cotraining", "Does re-clustering as the encoder improves help?",
           "Two epochs each: one keeps the tree of the starting encoder, the other re-encodes the corpus and "
           "rebuilds the tree after the first epoch, so the second epoch's siblings are the new encoder's.",
           {"fixed-tree": {"recluster_every": 0}, "co-training": {"recluster_every": 1}}, control="fixed-tree",
           settings={"epochs": 2}),
    Recipe("coherence", "Do tight sibling groups help retrieval more?",
           "HCE's siblings against in-batch training; then, per subtree of the starting tree, how tight "
           "its leaves are (mean cosine of a document to its leaf's centre) beside the gain of the queries whose "
           "relevant document lies in it, and their rank correlation.",
           {"in-batch": {"negatives": "in-batch"}, "siblings": {"negatives": "siblings"}}, control="in-batch"),
]}


def recipe_spec(name: str, corpus: str, seeds: list[int] | None = None, preset: str = "",
                settings: dict[str, Any] | None = None, split: str = "test") -> ExperimentSpec:
    """The :class:`ExperimentSpec` of recipe ``name`` on ``corpus`` (``settings`` on top of the recipe's)."""
    from ..errors import InputError
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    r = RECIPES[name]
    return ExperimentSpec(corpus=corpus, arms={k: dict(v) for k, v in r.arms.items()}, seeds=list(seeds or [0]),
                          preset=preset, settings={**r.settings, **(settings or {})}, control=r.control,
                          split=split, name=r.question, recipe=name)
