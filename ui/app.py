"""HCE Explorer's Streamlit entry: page config and navigation (run with ``hce app``)."""
from __future__ import annotations

import os
import sys

import streamlit as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `streamlit run ui/app.py` from any folder still imports hce_engine and ui
    sys.path.insert(0, ROOT)

st.set_page_config(page_title="HCE Explorer", page_icon=":material/account_tree:", layout="wide")

PAGES_DIR = "app_pages"  # relative to this file (not "pages": Streamlit would treat it as a v1 pages folder)
#: (file, title, icon) in menu order; the first is the landing page.
PAGES = [
    ("corpus", "Corpus", ":material/description:"),
    ("train", "Train", ":material/model_training:"),
    ("tree", "Tree", ":material/account_tree:"),
    ("siblings", "Siblings", ":material/family_history:"),
    ("map", "Map", ":material/scatter_plot:"),
    ("search", "Search", ":material/search:"),
    ("runs", "Runs", ":material/table_chart:"),
    ("learn", "Learn", ":material/school:"),
    ("experiments", "Experiments", ":material/science:"),
]

# After the sys.path line above, which lets them import (hence E402).
from hce_engine.errors import WorkspaceBusyError  # noqa: E402
from ui.common import md_escape  # noqa: E402

page = st.navigation([st.Page(f"{PAGES_DIR}/{name}.py", title=title, icon=icon, url_path=name, default=i == 0)
                      for i, (name, title, icon) in enumerate(PAGES)])
try:
    page.run()
except WorkspaceBusyError as exc:  # another process held the database past the wait: say which, plainly
    st.error(md_escape(str(exc)), icon=":material/lock:")
    st.caption("Reload the page to try again.")
