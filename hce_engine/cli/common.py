"""What every ``hce`` command shares: its flags, the settings flags, JSON output, the progress bar, and running
a parsed command (a user's error is one line on stderr and exit status 1)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TypeAlias

from ..errors import HCEError, InputError
from ..progress import Progress, fmt_duration

#: What a command module registers its commands on (``hce``'s sub-parsers, or a group's verbs).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _flag(*names: str, **kwargs) -> argparse.ArgumentParser:
    """A parent parser that declares one flag, for the commands that share it (``parents=[...]``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(*names, **kwargs)
    return p


# shared flags, declared once
AS_JSON = _flag("--json", action="store_true", help="print JSON on stdout, no progress bar")
CORPUS = _flag("--corpus", required=True, help="the corpus's name (hce corpora lists them)")
RUN = _flag("--run", type=int, help="a run id (hce runs lists them; default: the latest finished run)")


def config_flags(s: argparse.ArgumentParser, config_cls, show_defaults: bool = True) -> None:
    """One flag per field of a settings dataclass (TrainConfig, EncodeConfig), with its help and choices.
    Unset flags are None: the engine's defaults (or the preset's) apply."""
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "").replace("%", "%%")
        if show_defaults and f.default not in (None, ""):
            help_ += f" (default {f.default})"
        if isinstance(f.default, bool):
            s.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
            continue
        kind = str(f.type).split("|")[0].strip()
        typ = {"int": int, "float": float}.get(kind, str)
        s.add_argument(flag, dest=f.name, type=typ, choices=f.metadata.get("choices"), default=None, help=help_)


def config_settings(a, config_cls) -> dict:
    """The flags of :func:`config_flags` the user set."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(config_cls) if getattr(a, f.name) is not None}


def comma_list(text: str, kind: type, flag: str, what: str) -> list:
    """A comma-separated list of ``kind`` values (InputError naming ``flag`` and ``what`` it expects)."""
    try:
        return [kind(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise InputError(f"{flag}: expected {what} separated by commas, got {text!r}") from None


def print_json(obj) -> None:
    """``--json``: one JSON object on stdout (what JSON cannot hold, such as a timestamp, as its text)."""
    print(json.dumps(obj, default=str))


def progress_bar(quiet: bool):
    """A progress bar on stderr when it is a terminal (None with ``--json`` or when piped).

    Every engine stage reports :class:`~hce_engine.progress.Progress` events through it."""
    if quiet or not sys.stderr.isatty():
        return None
    state: dict[str, str | None] = {"stage": None}

    def report(ev: Progress) -> None:
        stage, done, total, eta_s = ev.stage, ev.done, ev.total, ev.eta_s
        if state["stage"] not in (None, stage):
            print(file=sys.stderr)  # keep the finished stage's line
        state["stage"] = stage
        bar = "#" * int(24 * ev.fraction)
        eta = f"  ETA {fmt_duration(eta_s)}" if eta_s is not None and eta_s == eta_s and done < total else ""
        print(f"\r{stage:>16s} [{bar:<24s}] {done}/{total}{eta}\x1b[K", end="", file=sys.stderr, flush=True)
        if total and done >= total:
            print(file=sys.stderr)
            state["stage"] = None
    return report


def run_command(a: argparse.Namespace) -> int:
    """Run a parsed command: ``a.func(workspace, a)``, or ``a.func(a)`` where it set ``opens_workspace=False``.
    Its ``check``, if it set one, runs first: a message is the error, before any workspace opens. An
    :class:`~hce_engine.errors.HCEError` is one line on stderr and exit status 1."""
    check = getattr(a, "check", None)
    problem = check(a) if check else None
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        return in_workspace(a, a.func) if getattr(a, "opens_workspace", True) else a.func(a)
    except HCEError as exc:
        print(f"hce {a.command}: error: {exc}", file=sys.stderr)
        return 1


def in_workspace(a: argparse.Namespace, func) -> int:
    """``func(workspace, a)`` on the open workspace, closed after it; Ctrl-C is exit status 130."""
    from ..workspace import Workspace
    try:
        ws = Workspace(a.workspace)
        try:
            return func(ws, a)
        finally:
            ws.close()
    except KeyboardInterrupt:
        print(f"hce {a.command}: interrupted", file=sys.stderr)
        return 130
