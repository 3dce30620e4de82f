"""bench/http's results: a text table, the same as markdown, JSON with the machine it ran on,
and a chart (rps service vs floor, and p99)."""

import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis

from bench.common import ROOT
from bench.http_wrk import Result


@dataclass
class Row:
    """One scenario: the service, and the floor on the same script when there is one."""

    name: str
    connections: int
    service: Result
    floor: Result | None = None
    floor_name: str | None = None

    @property
    def ratio(self) -> float | None:
        """Service rps over floor rps: the share of the bare stack's throughput kept."""
        return self.service.rps / self.floor.rps if self.floor and self.floor.rps else None


@dataclass
class Report:
    machine: dict[str, Any]
    options: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Worded results beyond the table: logins, ratios, workers, memory."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The numbers behind the notes, for the JSON."""


HEADER = ("scenario", "c", "rps", "p50 ms", "p99 ms", "non-2xx", "floor rps", "floor p99", "ratio")


def _cells(row: Row) -> tuple[str, ...]:
    s, f = row.service, row.floor
    floor_label = f"{f.rps:,.0f}" if f else "-"
    if f and row.floor_name != row.name:
        floor_label += f" ({row.floor_name})"
    return (
        row.name,
        str(row.connections),
        f"{s.rps:,.1f}",
        f"{s.p50_ms:.1f}",
        f"{s.p99_ms:.1f}",
        str(s.non2xx + s.socket_errors),
        floor_label,
        f"{f.p99_ms:.1f}" if f else "-",
        f"{row.ratio:.2f}" if row.ratio is not None else "-",
    )


def table(report: Report) -> str:
    rows = [HEADER, *(_cells(row) for row in report.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", *report.notes])


def revision(machine: dict[str, Any]) -> str:
    """The commit, marked when the work tree had uncommitted changes (the code measured)."""
    return str(machine["commit"])[:10] + ("+dirty" if machine["dirty"] else "")


def markdown(report: Report) -> str:
    m = report.machine
    lines = [
        f"bench/http on {m['cpu']} ({m['cpus']} cores), commit {revision(m)}, {m['date']}; "
        f"{report.options['duration']} s per scenario, wrk -t1. "
        "ratio = service rps / floor rps (same run).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" if i == 0 else "--:" for i in range(len(HEADER))) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report.rows]
    return "\n".join([*lines, "", *(f"- {note}" for note in report.notes)]) + "\n"


def write_json(report: Report, path: Path) -> None:
    data = {
        "machine": report.machine,
        "options": report.options,
        "scenarios": {
            row.name: {
                "connections": row.connections,
                "service": row.service.as_dict(),
                "floor": row.floor.as_dict() if row.floor else None,
                "floor_scenario": row.floor_name,
                "ratio": row.ratio,
            }
            for row in report.rows
        },
        **report.extra,
        "notes": report.notes,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = [row.name for row in report.rows]
    xs = range(len(names))
    width = 0.4
    figure, (rps, p99) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for axis, metric, label in ((rps, "rps", "requests/s"), (p99, "p99_ms", "p99 latency, ms")):
        service = [getattr(row.service, metric) for row in report.rows]
        floor = [getattr(row.floor, metric) if row.floor else 0 for row in report.rows]
        axis.bar([x - width / 2 for x in xs], service, width, label="service", color="#3b6ea8")
        axis.bar([x + width / 2 for x in xs], floor, width, label="floor", color="#b0b0b0")
        axis.set_yscale("log")  # logins and health differ by orders of magnitude
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
    for x, row in zip(xs, report.rows, strict=True):
        if row.ratio is not None:
            top = max(row.service.rps, row.floor.rps if row.floor else 0)
            rps.annotate(f"{row.ratio:.2f}", (x, top), ha="center", va="bottom", fontsize=9)
    rps.legend()
    rps.set_title("rps (service / floor written above)")
    p99.set_xticks(list(xs), names, rotation=20)
    m = report.machine
    figure.suptitle(f"bench/http: {m['cpu']}, {m['cpus']} cores, commit {revision(m)}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(report: Report, out: Path) -> list[Path]:
    """The run's results, all in `out` (bench/results/, or a temp directory for --smoke):
    docs/performance.md links them; no run rewrites the README or the docs."""
    written = [out / "http.json", out / "http.md", out / "http.png"]
    write_json(report, written[0])
    written[1].write_text(markdown(report), encoding="utf-8")
    chart(report, written[2])
    return written


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - git, with our own arguments, no shell
        ["git", *args],  # noqa: S607 - whichever git is on PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def head() -> dict[str, Any]:
    """The code as it is now: the commit, and whether tracked files differ from it (a run's
    own outputs, written over by every run, do not count)."""
    outputs = (":(exclude)bench/results",)
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs)),
    }


def machine(database_url: str, redis_url: str) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    ram = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    with Redis.from_url(redis_url) as redis:
        redis_version = redis.info("server")["redis_version"]
    return {
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "cpus": os.cpu_count(),
        "ram_gib": round(int(ram.group(1)) / 1024**2, 1) if ram else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": row[0] if row else None,
        "redis": redis_version,
        **head(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": os.getloadavg(),
    }


_ACCESS = re.compile(r"^[A-Z]+ \S+ (\d{3}) ")


def scan_log(path: Path) -> dict[str, int]:
    """What went wrong in a server log: 5xx answers, error lines, tracebacks."""
    counts = {"5xx": 0, "errors": 0, "warnings": 0, "tracebacks": 0}
    with path.open(encoding="utf-8", errors="replace") as log:
        for line in log:
            counts["tracebacks"] += "Traceback" in line
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            level = entry.get("level")
            counts["errors"] += level in ("ERROR", "CRITICAL")
            counts["warnings"] += level == "WARNING"
            access = _ACCESS.match(str(entry.get("message", "")))
            counts["5xx"] += bool(access and access.group(1).startswith("5"))
    return counts
