"""Experiments: arms of training settings x seeds on one corpus, compared query by query against a control.

The declaration (:class:`ExperimentSpec`, TOML or flags), the built-in recipes for the method's questions
(:data:`RECIPES`), the paired statistics (:mod:`.stats`) and the results (:func:`summarize`). Running them is
the workspace's job (``Workspace.create_experiment``, ``run_experiment``, ``experiment_results``).
"""
from .recipes import RECIPES, Recipe, recipe_spec
from .results import summarize, table_rows
from .spec import ExperimentSpec, load_spec, parse_arm, parse_settings

__all__ = ["ExperimentSpec", "RECIPES", "Recipe", "load_spec", "parse_arm", "parse_settings",
           "recipe_spec", "summarize", "table_rows"]
