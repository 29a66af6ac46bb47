"""What an experiment is: a corpus, a base preset, arms (setting overrides; one is the control) and seeds.

Every arm x seed becomes one ordinary training run: the preset, then the settings shared by every arm, then
the arm's own settings, then the seed. An experiment is declared in a TOML file or from ``hce experiment new``
flags (``--arm NAME:key=value,key=value``) and stored with its runs.

Example TOML::

    corpus = "scifact"
    preset = "quick"
    seeds = [0, 1]
    control = "random"          # the arm the others are compared against (default: the first)
    split = "test"              # the judged queries the arms are compared on

    [settings]                  # every arm
    max_pairs = 64

    [arms.random]
    negatives = "random"

    [arms.siblings]
    negatives = "siblings"
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..training.config import PRESETS, TrainConfig

#: An arm's name: what tables, plots and run labels show.
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]{0,39}$")
#: Settings an arm may not set: the experiment's seeds and the corpus's splits decide them.
RESERVED = ("seed",)


@dataclass
class ExperimentSpec:
    """An experiment's declaration (stored as JSON with it).

    Args:
        corpus: the corpus every run trains on.
        arms: {arm name: {setting: value}}, in display order; each a set of :class:`TrainConfig` overrides.
        seeds: the seeds every arm runs with (the same seeds for all arms: runs pair up by seed).
        preset: the base preset (``TrainConfig.preset`` names; empty: the corpus's default one).
        settings: overrides shared by every arm (applied before the arm's own).
        control: the arm the others are compared against (default: the first arm).
        split: the judged split the arms are compared on (never trained on).
        name: a title for tables and the app.
        recipe: the built-in recipe it came from, if any (:mod:`.recipes`).
    """

    corpus: str
    arms: dict[str, dict[str, Any]]
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    control: str = ""
    split: str = "test"
    name: str = ""
    recipe: str = ""

    def __post_init__(self) -> None:
        if not self.control and self.arms:
            self.control = next(iter(self.arms))
        if not self.name:
            self.name = " vs ".join(self.arms) if len(self.arms) <= 4 else f"{len(self.arms)} arms"

    def overrides(self, arm: str, seed: int) -> dict[str, Any]:
        """The settings of arm x seed on top of the preset: shared settings, the arm's, the seed."""
        return {**self.settings, **self.arms[arm], "seed": seed}

    def validate(self) -> "ExperimentSpec":
        """Raise InputError naming the first problem; return self. Every arm x seed must make valid settings."""
        if not isinstance(self.corpus, str) or not self.corpus:
            raise InputError("an experiment needs a corpus")
        if not self.arms:
            raise InputError("an experiment needs at least one arm")
        for arm, values in self.arms.items():
            if not ARM_NAME.match(arm):
                raise InputError(f"arm name {arm!r}: use up to 40 letters, digits and _ . + = - (starting with a "
                                 "letter or digit)")
            if not isinstance(values, dict):
                raise InputError(f"arm {arm!r}: its settings must be a table of setting = value")
        if self.control not in self.arms:
            raise InputError(f"control {self.control!r} is not one of the arms ({', '.join(self.arms)})")
        if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.seeds):
            raise InputError(f"seeds must be integers >= 0 (got {self.seeds!r})")
        if len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"seeds repeat: {self.seeds!r}")
        if self.preset and self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if not isinstance(self.split, str) or not self.split:
            raise InputError("split must name the judged queries to compare on (e.g. test)")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        for where, values in [("settings", self.settings)] + [(f"arm {a!r}", v) for a, v in self.arms.items()]:
            for key in values:
                if key in RESERVED:
                    raise InputError(f"{where}: {key} is set by the experiment's seeds, not by an arm")
                if key not in known:
                    raise InputError(f"{where}: unknown setting {key!r} (see `hce train --help`)")
        for arm in self.arms:
            try:
                TrainConfig.preset(self.preset or "quick", **self.overrides(arm, self.seeds[0])).validate()
            except (TypeError, ValueError) as exc:
                raise InputError(f"arm {arm!r}: {exc}") from None
        if self.settings.get("split") == self.split or any(a.get("split") == self.split for a in self.arms.values()):
            raise InputError(f"the arms would train on split {self.split!r}, the split they are compared on")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "experiment") -> "ExperimentSpec":
        """Inverse of :meth:`to_dict` (``source`` names the file in errors). Unknown keys raise InputError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown experiment key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                             source, None)
        if not isinstance(data.get("arms", {}), dict) or not isinstance(data.get("settings", {}), dict):
            raise InputError("arms and settings must be tables", source, None)
        return cls(**{k: v for k, v in data.items()})


def load_spec(path: str, **defaults: Any) -> ExperimentSpec:
    """An experiment from a TOML file (keys as :class:`ExperimentSpec`; ``defaults`` fill the keys it lacks,
    e.g. the corpus named on the command line). Raises InputError naming the file (and line) on a problem."""
    label = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise InputError(f"cannot read the experiment file: {exc.strerror or exc}", label, None) from None
    except tomllib.TOMLDecodeError as exc:  # "Invalid value (at line 3, column 13)"
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise InputError(f"not valid TOML: {problem}" + (f" (column {where.group(2)})" if where else ""), label,
                         int(where.group(1)) if where else None) from None
    for key, value in defaults.items():
        if value not in (None, "", [], {}) and key not in data:
            data[key] = value
    try:
        return ExperimentSpec.from_dict(data, label).validate()
    except InputError as exc:
        raise InputError(exc.problem, label, exc.line) from None


def parse_value(text: str) -> Any:
    """A setting's value from a flag: true/false, none, an int, a float, else the text itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", "auto-levels"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_settings(text: str, where: str) -> dict[str, Any]:
    """``key=value,key=value`` as a dict of settings (InputError naming ``where`` on a malformed pair)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{where}: expected key=value, got {part!r}")
        out[key.strip()] = parse_value(value)
    return out


def parse_arm(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,key=value`` (or just ``NAME`` for the preset unchanged) as (name, settings)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise InputError(f"--arm {text!r}: expected NAME:key=value,...")
    return name, parse_settings(rest, f"--arm {name}")
