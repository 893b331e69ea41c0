"""Built-in plugins of Transfer Advisor, installed as ``advisor_plugins``."""
