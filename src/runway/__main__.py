"""Allows ``python -m runway``."""

from __future__ import annotations

from runway.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
