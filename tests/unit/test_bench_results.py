"""bench/http writes its results under bench/results/ (docs/performance.md links them), never
into the README or the docs."""

from pathlib import Path

from bench.http_report import Report, Row, write_results
from bench.http_wrk import Result
from tests.conftest import ROOT


def _result(rps: float) -> Result:
    return Result(
        requests=int(rps),
        duration_s=1.0,
        rps=rps,
        p50_ms=1.0,
        p90_ms=2.0,
        p95_ms=3.0,
        p99_ms=4.0,
        max_ms=5.0,
        non2xx=0,
        socket_errors=0,
    )


def test_a_run_writes_its_table_json_and_chart_in_its_results_directory_only(
    tmp_path: Path,
) -> None:
    machine = {"cpu": "test", "cpus": 2, "commit": "0" * 40, "dirty": False, "date": "today"}
    report = Report(machine=machine, options={"duration": 1})
    report.rows.append(Row("list", 32, _result(900.0), _result(1800.0), "list"))
    readme, docs = (ROOT / "README.md").read_bytes(), sorted((ROOT / "docs").iterdir())
    written = write_results(report, tmp_path)
    assert sorted(written) == sorted(tmp_path.iterdir())
    assert {path.name for path in written} == {"http.json", "http.md", "http.png"}
    assert "| list | 32 | 900.0 |" in (tmp_path / "http.md").read_text()
    assert (ROOT / "README.md").read_bytes() == readme
    assert sorted((ROOT / "docs").iterdir()) == docs


def test_no_bench_module_names_the_readme_or_docs_as_an_output() -> None:
    for path in sorted((ROOT / "bench").glob("*.py")):
        source = path.read_text("utf-8")
        assert '"README' not in source, path
        assert '"docs"' not in source, path
        assert "docs/bench" not in source, path
