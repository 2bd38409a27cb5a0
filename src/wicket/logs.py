"""Structured logging for the daemon: text for people, JSON lines for collectors.

Nothing secret is ever passed to a logger (tokens, passwords, keys); this module
only decides where lines go and how they look.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from wicket.config.models import LogConfig, LogFormat

LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, message (and error)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "component": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(config: LogConfig) -> None:
    """Send the daemon's logs where the config says."""
    handler: logging.Handler
    if config.output == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    elif config.output == "stdout":
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.FileHandler(config.output, encoding="utf-8")
    if config.format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-5s [%(name)s] %(message)s")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(str(config.severity.value), logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
