"""Read a session report's figures the way a reader sees them, and stats.yaml's independently.

Works on the written file and on the DOM a browser dumps after running the page's scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

_JSON = json.JSONDecoder()


@dataclass
class Element:
    """An element of interest: its attributes and its text."""

    attrs: dict[str, str]
    text: str = ""
    cells: list[str] = field(default_factory=list)


@dataclass
class ChartDom:
    """What a browser drew inside one chart's element (plotly's SVG)."""

    classes: dict[str, int] = field(default_factory=dict)
    x_ticks: list[str] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    title: str = ""


class ReportPage(HTMLParser):
    """The summary figures (by id), the per-date rows, the total row, the checks line and,
    per chart element (``chart-N``), the classes, x-axis tick labels and legend entries inside.
    """

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.summary: dict[str, Element] = {}
        self.days: list[Element] = []
        self.total: Element | None = None
        self.checks: Element | None = None
        self.classes: dict[str, int] = {}
        self.charts: dict[str, ChartDom] = {}
        self._open: list[tuple[str, Element | None, str | None]] = []
        self._row: Element | None = None
        self._cell: list[str] | None = None
        self._last_g_class = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        chart = next((c for _, _, c in reversed(self._open) if c), None)
        if found.get("id", "").startswith("chart-"):
            chart = found["id"]
            self.charts.setdefault(chart, ChartDom())
        classes = found.get("class", "").split()
        for cls in classes:
            self.classes[cls] = self.classes.get(cls, 0) + 1
            if chart is not None:
                counts = self.charts[chart].classes
                counts[cls] = counts.get(cls, 0) + 1
        if chart is not None and tag == "text" and "data-unformatted" in found:
            parent = self._open[-1][0] if self._open else ""
            if parent == "g" and self._last_g_class == "xtick":
                self.charts[chart].x_ticks.append(found["data-unformatted"])
            if "legendtext" in classes:
                self.charts[chart].legend.append(found["data-unformatted"])
            if "gtitle" in classes:
                self.charts[chart].title = found["data-unformatted"]
        if tag == "g":
            self._last_g_class = found.get("class", "")
        element: Element | None = None
        if tag == "dd" and "id" in found:
            element = self.summary.setdefault(found["id"], Element(found))
        elif tag == "tr" and ("day" in found.get("class", "").split()):
            element = self._row = Element(found)
            self.days.append(element)
        elif tag == "tr" and found.get("id") == "days-total":
            element = self._row = self.total = Element(found)
        elif found.get("id") == "checks":
            element = self.checks = Element(found)
        elif tag == "td" and self._row is not None:
            self._cell = []
        if tag not in ("br", "meta", "img", "input", "link", "hr"):
            self._open.append((tag, element, chart))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.cells.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr":
            self._row = None
        # Close up to the matching open tag (an end tag without one is ignored).
        if any(opened == tag for opened, _, _ in self._open):
            while self._open:
                opened, _, _ = self._open.pop()
                if opened == tag:
                    break

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, element, _ in self._open:
            if element is not None:
                element.text += data


def read_page(path_or_text: Path | str) -> ReportPage:
    """Parse a report file (a Path) or a dumped DOM (a str)."""
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    return ReportPage(text)


def _stats(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "stats.yaml").read_text())
    assert isinstance(data, dict)
    return data


def stats_by_date(out: Path, session_id: str) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Per trading date: the session's runs and the stats.yaml of the date's latest run.

    The latest run is the one with the highest number (these tests start runs in order).
    """
    found: dict[str, list[Path]] = {}
    for run_yaml in sorted(out.glob("*/run_*/run.yaml")):
        if yaml.safe_load(run_yaml.read_text())["session_id"] == session_id:
            found.setdefault(run_yaml.parent.parent.name, []).append(run_yaml.parent)
    result = {}
    for day, folders in sorted(found.items()):
        folders.sort(key=lambda f: int(f.name.removeprefix("run_")))
        result[day] = ([f.name for f in folders], _stats(folders[-1]))
    return result


def all_daily_blocks(out: Path, session_id: str) -> list[dict[str, Any]]:
    """The daily block of every run folder of the session (two per date with two runs)."""
    return [
        _stats(run_yaml.parent)["daily"]
        for run_yaml in sorted(out.glob("*/run_*/run.yaml"))
        if yaml.safe_load(run_yaml.read_text())["session_id"] == session_id
    ]


def money(value: float) -> str:
    """Currency as the report shows it: to the cent, thousands separated."""
    text = f"{value:,.2f}"
    return "0.00" if text == "-0.00" else text


def plotted_traces(text: str, chart_id: str) -> list[dict[str, Any]]:
    """The traces a report hands plotly for one chart (the page's ``Plotly.newPlot`` data)."""
    call = text.index(f'"{chart_id}",', text.index("Plotly.newPlot("))
    traces, _ = _JSON.raw_decode(text, text.index("[", call))
    assert isinstance(traces, list)
    return traces
