"""The results table (markdown) and its JSON, latest and timestamped."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    scenario: str
    call: str
    engine: str
    measured: str
    baseline: str
    ratio: float
    ratio_label: str
    target: str
    #: None: reported, with no target to meet.
    met: bool | None
    extra: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def job_ratio_row(
    scenario: str,
    population: str,
    engine: str,
    seconds: float,
    baseline: tuple[float, str],
    limit: float | None,
    extra: str,
    details: dict[str, Any],
) -> Row:
    """A run of the analytics job against another in the same benchmark (`baseline`: its
    seconds and what it was): their ratio, met when at most `limit` (None: reported)."""
    ratio = seconds / baseline[0]
    return Row(
        scenario=scenario,
        call=population,
        engine=engine,
        measured=f"{seconds:.1f} s",
        baseline=f"{baseline[0]:.1f} s {baseline[1]}",
        ratio=ratio,
        ratio_label=f"{ratio:.2f}x",
        target="reported" if limit is None else f"<= {limit}x",
        met=None if limit is None else ratio <= limit,
        extra=extra,
        details=details,
    )


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"## `{meta['command']}`: {meta['population']}, {meta['started_at']}",
        "",
        f"Every ratio is to a baseline measured in the same run ({meta['seconds']} s, "
        f"{meta['machine']['cpus']} CPUs, load average (1/5/15 min) at the start "
        f"{meta['machine'].get('load_average_at_start')}, at the end "
        f"{meta['machine']['load_average_at_end']}).",
        "",
        "| Scenario | Call | Engine | Measured | Baseline | Ratio | Target | Met | Notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.call} | {row.engine} | {row.measured} | {row.baseline} "
            f"| **{row.ratio_label}** | {row.target} | {_met(row.met)} "
            f"| {row.extra} |"
        )
    facts = meta.get("facts", {})
    if facts:
        lines += ["", "| Engine | Seeding (bulk path) | Server peak RSS |", "|---|---|---|"]
        for engine, values in facts.items():
            lines.append(
                f"| {engine} | {values.get('seed_seconds', '?')} s, "
                f"{values.get('seed_events_per_second', 0):,} events/s "
                f"| {values.get('server_peak_rss_mb', '?')} MB |"
            )
    targets = [row for row in rows if row.met is not None]
    met = sum(1 for row in targets if row.met)
    lines += ["", f"{met} of {len(targets)} targets met."]
    return "\n".join(lines) + "\n"


def _met(met: bool | None) -> str:
    if met is None:
        return "—"
    return "yes" if met else "**no**"


def write_report(rows: list[Row], meta: dict[str, Any], directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, meta)
    document = {"meta": meta, "rows": [asdict(row) for row in rows]}
    stamp = meta["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    for name in ("latest", f"{meta['mode']}-latest", f"run-{meta['mode']}-{stamp}"):
        (directory / f"{name}.md").write_text(table)
        (directory / f"{name}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    return table
