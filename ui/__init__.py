"""The Streamlit dashboard, installed as ``advisor_ui``."""
