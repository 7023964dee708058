"""The settings tables of the README and the guides, rendered from ``config.SETTINGS``.

Each table is written once, by ``scripts/settings-table``, between two markers in the guide;
tests/test_docs.py fails while one differs from what the declarations render.
"""

from __future__ import annotations

import json
from typing import Any

from flaskr.config import SETTINGS

#: Where a guide's settings table starts and ends: scripts/settings-table rewrites what is
#: between them, tests/test_docs.py checks it is what settings_table renders.
TABLE_START = "<!-- settings:start -->"
TABLE_END = "<!-- settings:end -->"


def settings_table(guide: str) -> str:
    """The Markdown table of the settings ``guide`` lists, as declared in SETTINGS."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        if setting.guide == guide:
            where = " (environment only)" if setting.env_only else ""
            shown = setting.shown or _shown(setting.name, setting.default)
            rows.append(f"| `FLASKR_{setting.name}`{where} | {shown} | {setting.meaning} |")
    return "\n".join(rows)


def _shown(name: str, default: Any) -> str:
    """A default as the tables show it: as JSON, a size in bytes also in KB or MB."""
    if default is None:
        return "none"
    if isinstance(default, str):
        return f"`{default}`"
    shown = f"`{json.dumps(default)}`"
    if "BYTES" in name and default % 1024 == 0:
        kb = default // 1024
        shown += f" ({kb // 1024} MB)" if kb % 1024 == 0 else f" ({kb} KB)"
    return shown


def with_settings_table(text: str, guide: str) -> str:
    """``text``, the guide's, with its settings table (between the markers) rendered anew."""
    before, start, rest = text.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not (start and end):
        raise ValueError(f"{guide} has no {TABLE_START} ... {TABLE_END}")
    return f"{before}{start}\n{settings_table(guide)}\n{end}{after}"
