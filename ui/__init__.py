"""HCE Explorer's Streamlit app: thin pages over :mod:`hce_engine` (no engine logic here)."""
