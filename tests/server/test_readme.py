"""The README's curl lines work as written: run in order, in one shell, against the service as
`scripts/start` serves it (development settings), each HTTP error failing the run."""

import re
import subprocess

from tests.conftest import ROOT
from tests.serving import Serve

README_URL = "http://127.0.0.1:8000"
# Every curl line fails on an HTTP error status (printing the problem it got).
STRICT_CURL = 'set -eu\ncurl() { command curl --fail-with-body "$@"; }\n'


def _curl_blocks() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    return [block for block in blocks if re.search(r"^curl |\$\(curl ", block, flags=re.MULTILINE)]


def test_the_readmes_curl_lines_work_as_written(serve: Serve) -> None:
    blocks = _curl_blocks()
    assert len(blocks) >= 2  # the browser's preflight and the walk-through
    with serve(ENVIRONMENT="development") as server:
        script = STRICT_CURL + "\n".join(blocks).replace(README_URL, server.url)
        result = subprocess.run(  # noqa: S603 (our own script, from our README)
            ["bash", "-c", script],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "access-control-allow-origin: http://localhost:5173" in result.stdout.lower()
    assert '"title":"Buy milk"' in result.stdout  # created, then listed
    assert result.stdout.count('"refresh_token"') == 1  # the refresh answered a new pair
