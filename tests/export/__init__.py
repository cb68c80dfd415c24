"""Tests for mailcrate.export (archive format: zip writer, names, manifest, verifier)."""

import sys
from pathlib import Path

try:
    import mailcrate  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the venv was set up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
