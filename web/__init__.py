"""The browser runtime (ES modules) and page templates, copied into every built site."""
from pathlib import Path

WEB_DIR = Path(__file__).parent
