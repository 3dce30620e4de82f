"""docs/http.md's table of error codes is the deployment's: every (status, code) the service's
code or its reverse proxy's configuration (deploy/nginx.conf) can answer is listed, and nothing
else is."""

import ast
import re
from pathlib import Path

from app.presentation.errors import DOMAIN_ERRORS, HTTP_CODES
from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "http.md"
PROXY_CONF = ROOT / "deploy" / "nginx.conf"
# nginx's own answers: `return 431 '{…"code":"headers_too_large"}';`
_PROXY_PROBLEM = re.compile(r"^\s*return (\d{3}) '\{[^']*\"code\":\"([a-z_]+)\"", re.MULTILINE)
_ROW = re.compile(r"^\| (\d{3}) \| `([a-z_]+)` \|", re.MULTILINE)


def _literal_problems(source: Path) -> set[tuple[int, str]]:
    """(status, code) of every `HTTPProblem(status, "code", …)` and
    `problem(request, status, "code", …)` written with literals."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        offset = {"HTTPProblem": 0, "problem": 1}.get(node.func.id)
        if offset is None or len(node.args) < offset + 2:
            continue
        status, code = node.args[offset], node.args[offset + 1]
        if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
            assert isinstance(status.value, int), ast.dump(node)
            assert isinstance(code.value, str), ast.dump(node)
            found.add((status.value, code.value))
    return found


def codes_in_code() -> set[tuple[int, str]]:
    codes = set(DOMAIN_ERRORS.values()) | set(HTTP_CODES.items())
    for source in (ROOT / "app").rglob("*.py"):
        codes |= _literal_problems(source)
    return codes


def codes_in_proxy() -> set[tuple[int, str]]:
    return {(int(status), code) for status, code in _PROXY_PROBLEM.findall(PROXY_CONF.read_text())}


def test_the_guide_lists_every_error_code_the_deployment_answers_and_no_other() -> None:
    listed = {(int(status), code) for status, code in _ROW.findall(GUIDE.read_text())}
    in_code = codes_in_code()
    assert in_code - listed == set(), "answered by the service, missing from docs/http.md"
    in_proxy = codes_in_proxy()
    assert in_proxy - listed == set(), "answered by deploy/nginx.conf, missing from docs/http.md"
    assert listed - in_code - in_proxy == set(), "in docs/http.md, answered by nothing"


def test_the_scan_finds_codes_the_proxy_answers() -> None:
    # Guards the scanner itself: the proxy's own refusals must be found.
    assert {(431, "headers_too_large"), (429, "rate_limited")} <= codes_in_proxy()


def test_the_scan_finds_codes_raised_in_the_presentation_layer() -> None:
    # Guards the scanner itself: codes only a raise site names must be found.
    assert {(429, "rate_limited"), (400, "cors_refused"), (400, "invalid_request")} <= (
        codes_in_code()
    )
