"""The Transfer Advisor dashboard: ``advisor ui`` runs ``streamlit run`` on this file."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"
PAGES = [
    ("data.py", "Data", ":material/dataset:"),
    ("similarity.py", "Similarity", ":material/compare_arrows:"),
    ("search.py", "Search", ":material/manage_search:"),
    ("recommendation.py", "Recommendation", ":material/recommend:"),
    ("runs.py", "Runs", ":material/history:"),
    ("plugins.py", "Plugins", ":material/extension:"),
]


def main() -> None:
    """Configure the page and route to the chosen view."""
    st.set_page_config(page_title="Transfer Advisor", page_icon=":material/swap_horiz:", layout="wide")
    pages = [st.Page(str(VIEWS / f), title=t, icon=i, default=(t == "Data")) for f, t, i in PAGES]
    st.navigation(pages).run()


if __name__ == "__main__":  # streamlit runs this file as __main__
    main()
