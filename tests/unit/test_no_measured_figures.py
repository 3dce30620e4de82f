"""No measured figure in a code comment: a comment says why; the numbers (they go stale with
every machine and every upgrade) live in docs/performance.md. Scans app/'s comments and
docstrings for timings, rates, percentages, speed-ups and before -> after pairs."""

import ast
import io
import re
import tokenize
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT

MEASUREMENT = re.compile(
    r"\d[\d,.]*\s*(µs|us|ms|ns|rps|req/s|%|x\b|\u00d7)"  # 17 µs, 40 %, 1.5x
    r"|\b(about |some |roughly )?(a|one) (tenth|third|fifth|quarter|half) of\b"  # a tenth of
    r"|\d[\d,.]*\s*(->|→)\s*\d"  # 180 -> 60
    r"|\b\d+(\.\d+)? times (faster|slower|as fast|the cost)",
    re.IGNORECASE,
)


def comments_and_docstrings(source: str) -> Iterator[tuple[int, str]]:
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                yield node.body[0].lineno, docstring


def measurements(source: str) -> list[str]:
    return [
        f"line {line}: {found.group(0)!r}"
        for line, text in comments_and_docstrings(source)
        for found in MEASUREMENT.finditer(text)
    ]


def test_no_comment_or_docstring_in_app_quotes_a_measurement() -> None:
    report = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        report += [f"{name} {found}" for found in measurements(path.read_text("utf-8"))]
    assert not report, "Measured figures belong in docs/performance.md:\n" + "\n".join(report)


@pytest.mark.parametrize(
    "text",
    [
        "# about 17 µs a request with FastAPI 0.165",
        "# 65 -> 16 us of client CPU per check",
        '"""list p99 from about 180 ms to about 60 ms, and some 40 % more requests."""',
        "# cost it about a tenth of its CPU",
        "# 1.5x the floor",
        "# 2.5\u00d7 the floor",
    ],
)
def test_the_scan_finds_a_measurement(text: str) -> None:
    assert measurements(text + "\n")


@pytest.mark.parametrize(
    "text",
    [
        "# Argon2id cost; the defaults are OWASP's recommendation (19 MiB, 2 passes).",
        "# a refill slower than this starts again",
        "# RFC 9110 §15.5.6 wants them all",
        '"""A 503 the client may retry after 5 seconds."""',
    ],
)
def test_the_scan_lets_settings_and_references_pass(text: str) -> None:
    assert measurements(text + "\n") == []
