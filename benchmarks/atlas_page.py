"""A one-page Streamlit app drawing a workspace run's stored map with the ``embedding-atlas`` component (WebGL,
its own labels and search), for ``map_draw.py --viewer atlas`` to time against the app's plotly Map page.

    streamlit run benchmarks/atlas_page.py -- WORKSPACE [RUN]

Every mapped document is sent (no thinning) with its text, as the component expects: a DataFrame with x, y and
text columns. Needs ``pip install --no-deps embedding-atlas`` (its Streamlit component only needs streamlit).
"""
from __future__ import annotations

import sys

import pandas as pd
import streamlit as st
from embedding_atlas.streamlit import embedding_atlas

from hce_engine import Workspace


@st.cache_resource
def frame(path: str, run: int | None) -> pd.DataFrame:
    ws = Workspace(path)
    info = ws.run(run) if run is not None else [r for r in ws.runs() if r.done][-1]
    ids, xy = ws.projection(info.run_id)
    docs = ws.documents(info.corpus, doc_ids=ids).set_index("doc_id").loc[ids]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "text": docs["text"].to_numpy()})


st.set_page_config(page_title="Map (embedding-atlas)", layout="wide")
st.title("Map")
args = sys.argv[1:]
data = frame(args[0], int(args[1]) if len(args) > 1 else None)
st.caption(f"{len(data):,} documents, drawn by embedding-atlas")
embedding_atlas(data, x="x", y="y", text="text", labels="automatic", key="atlas")
