"""The repository's paths, for every test folder: computed here once, so a test file does not count its depth."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / "collections"
