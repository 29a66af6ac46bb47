"""``hce app``: this process becomes the Streamlit server of ``ui/`` on the workspace."""
from __future__ import annotations

import sys

from .common import Commands


def _streamlit_flags(config_path: str) -> list[str]:
    """``[section] key = value`` of streamlit_config.toml -> ``--section.key=value`` flags."""
    import tomllib
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    flags = []
    for section, values in cfg.items():
        for key, value in values.items():
            value = str(value).lower() if isinstance(value, bool) else value
            flags.append(f"--{section}.{key}={value}")
    return flags


def cmd_app(a) -> int:
    """Start the Streamlit app on the workspace (this process must not hold the database)."""
    import os

    from ..workspace import Workspace, default_workspace
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    workspace = os.path.abspath(a.workspace or default_workspace())
    env = dict(os.environ, HCE_WORKSPACE=workspace)
    if a.sample:
        ws = Workspace(workspace)
        try:
            if "jargon" not in {c["name"] for c in ws.corpora()}:
                report = ws.add_sample("jargon")
                print(f"imported the sample corpus 'jargon' ({report.documents} documents)", file=sys.stderr)
        finally:
            ws.close()
        env["HCE_AUTO_ENCODE"] = "1"  # the app encodes corpora that have no run yet, in the background
    # ui/server.py opens the workspace (and starts encoding the sample) before serving ui/app.py
    cmd = [sys.executable, os.path.join(root, "ui", "server.py"),
           *_streamlit_flags(os.path.join(root, "streamlit_config.toml"))]
    if a.port:
        cmd.append(f"--server.port={a.port}")
    port = a.port or 8501
    print(f"HCE Explorer on http://127.0.0.1:{port} (workspace {workspace})", file=sys.stderr, flush=True)
    # Become the Streamlit server (no child left behind when this process is stopped).
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def app_parser(sub: Commands) -> None:
    s = sub.add_parser("app", help="start the app (Streamlit) on this workspace")
    s.add_argument("--port", type=int)
    s.add_argument("--sample", action="store_true", help="import the bundled Jargon File sample if missing, "
                   "and encode corpora that have no run yet")
    s.set_defaults(func=cmd_app, opens_workspace=False)
