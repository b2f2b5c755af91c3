"""How every bench script reports: one JSON object with ``--json``, else a two-column table."""

from __future__ import annotations

import json
from typing import Any


def print_figures(figures: dict[str, Any], as_json: bool) -> None:
    """Floats are rounded to 4 decimals in JSON and shown with 4 in the table; other values as they are."""
    if as_json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
        return
    width = max(len("figure"), *(len(k) for k in figures))
    print(f"{'figure':<{width}}  value")
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
