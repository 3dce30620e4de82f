"""bench/http's list shapes: every filter alone, one combination, and every sort key in both
directions, each the list load (32 connections, every user's own list) against this run's
plain list. The requirement: each at least half the plain list's rate."""

from bench import http_wrk as wrk
from bench.http_scenarios import FILTERED, Bench
from bench.seed import END, NOUNS, START
from harness.live_server import LiveServer

SHAPE_FLOOR = 0.5  # of the plain list's rps
MIDDLE = (START + (END - START) / 2).strftime("%Y-%m-%dT%H:%M:%SZ")
FILTERS = {
    "completed=false": "completed=false",
    "completed=true": "completed=true",
    "priority=high": "priority=high",
    "priority (two)": "priority=high&priority=urgent",
    "tag=work": "tag=work",
    f"q={NOUNS[0]}": f"q={NOUNS[0]}",
    "due_before": f"due_before={MIDDLE}",
    "due_after": f"due_after={MIDDLE}",
    "overdue=true": "overdue=true",
    "deleted=true (the trash)": "deleted=true",
    "combined": FILTERED,
}
SORTS = {
    f"sort={sign}{key}": f"sort={sign}{key}"
    for key in ("created_at", "updated_at", "due_at", "priority", "title")
    for sign in ("", "-")
}
SHAPES = {**FILTERS, **SORTS}


def shapes_phase(bench: Bench, server: LiveServer, plain_rps: float) -> dict[str, float]:
    """Each shape's rps over the plain list's (this run's `list`)."""
    ratios = {}
    for label, query in SHAPES.items():
        load = wrk.Load("list.lua", 32, {"BENCH_QUERY": f"{query}&limit=20"})
        result = bench.measure(server, f"list {label}", [load])[0]
        ratios[label] = result.rps / plain_rps if plain_rps else 0.0
    return ratios
