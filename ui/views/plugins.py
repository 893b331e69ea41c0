"""Plugins: what is installed, what each plugin registers, and load failures."""

from __future__ import annotations

import streamlit as st
from advisor_ui.common import registry, show_error

st.title("Plugins")
st.caption("Strategies, metrics and scenarios come from plugins in the `transfer_advisor` entry-point group.")
try:
    doc = registry().to_json()
except Exception as exc:  # the page shows one line, never a traceback
    show_error(exc)
    st.stop()

rows = [{
    "plugin": p["name"], "version": p["version"], "source": p["source"], "distribution": p["distribution"],
    "strategies": ", ".join(f"{s['name']} ({s['family']})" for s in p["strategies"]) or "-",
    "metrics": ", ".join(f"{m['name']} ({m['kind']})" for m in p["metrics"]) or "-",
    "scenarios": ", ".join(s["name"] for s in p["scenarios"]) or "-",
} for p in doc["plugins"]]
st.subheader(f"Installed plugins ({len(rows)})")
if rows:
    st.dataframe(rows, hide_index=True)
else:
    st.info("No plugin is loaded.")

st.subheader("Load failures")
if doc["failures"]:
    st.warning(f"{len(doc['failures'])} plugin(s) failed to load; the others keep working.")
    st.dataframe(doc["failures"], hide_index=True)
else:
    st.success("Every plugin loaded.")
