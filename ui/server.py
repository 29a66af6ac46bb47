"""The ``hce app`` process: open the workspace and start what users should not wait for, then serve the app.

Streamlit runs a page's script only when a browser connects, so work started from a page waits for the first
visitor. This entry opens the workspace first, in the same process as the server (the pages get the same
``get_workspace()`` object): with ``HCE_AUTO_ENCODE=1`` (``hce app --sample``) corpora without a run start
encoding at once, and the UMAP compiler warms up. Then Streamlit serves ``ui/app.py`` with the given flags.

    python ui/server.py [streamlit flags...]
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(flags: list[str]) -> None:
    import atexit

    from streamlit.web import cli as stcli

    from hce_engine import tempfiles
    from ui.common import get_workspace
    atexit.register(tempfiles.remove_own, "export")  # the files offered for download; stale ones of killed
    # app processes go when a workspace is next opened
    get_workspace()  # opens the workspace and starts its background work (see ui.common.get_workspace)
    sys.argv = ["streamlit", "run", os.path.join(ROOT, "ui", "app.py"), *flags]
    sys.exit(stcli.main())


if __name__ == "__main__":
    main(sys.argv[1:])
