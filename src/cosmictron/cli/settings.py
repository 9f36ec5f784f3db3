"""The CLI's saved settings; the reader lives in ``client/settings.py``, shared with the SDK."""

from cosmictron.client.settings import (
    DEFAULT_SERVER,
    FILE_NAME,
    SavedIdentity,
    Settings,
    config_dir,
    normalise_server_url,
)

__all__ = [
    "DEFAULT_SERVER",
    "FILE_NAME",
    "SavedIdentity",
    "Settings",
    "config_dir",
    "normalise_server_url",
]
