"""Regenerate the tables of the READMEs (README.md and benchmarks/README.md) from the result files.

A generated block in either README is framed by two comments naming the command that prints it:

    <!-- generated: python benchmarks/experiments.py --markdown benchmarks/results/experiments_scifact.json -->
    ...the command's output...
    <!-- end generated -->

``python benchmarks/readme_tables.py`` runs every such command (from the repository root) and writes its output
between the comments; ``--check`` only reports blocks that differ (``tests/test_result_provenance.py`` runs it),
so a figure in a generated table is always the result file's.
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READMES = (ROOT / "README.md", ROOT / "benchmarks" / "README.md")
BLOCK = re.compile(r"(<!-- generated: (python [^\n]*?) -->\n)(.*?)(<!-- end generated -->)", re.S)


def render(command: str) -> str:
    """The command's stdout (run with this Python, from the repository root)."""
    args = shlex.split(command)
    if args[0] != "python" or not args[1].startswith("benchmarks/") or "--markdown" not in args:
        raise SystemExit(f"not a benchmark's --markdown command: {command}")
    out = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise SystemExit(f"{command} failed:\n{out.stderr}")
    return out.stdout.rstrip("\n") + "\n"


def blocks(text: str) -> list[tuple[str, str]]:
    """(command, current content) of every generated block."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="report stale blocks, change nothing (exit 1 if any)")
    a = ap.parse_args()
    stale_total = 0
    for readme in READMES:
        text = readme.read_text()
        stale = [cmd for cmd, body in blocks(text) if render(cmd) != body]
        stale_total += len(stale)
        if a.check:
            for cmd in stale:
                print(f"stale in {readme.relative_to(ROOT)}: {cmd}")
            continue
        readme.write_text(BLOCK.sub(lambda m: m.group(1) + render(m.group(2)) + m.group(4), text))
        print(f"{readme.relative_to(ROOT)}: {len(blocks(text))} blocks, {len(stale)} rewritten")
    if a.check and stale_total:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
