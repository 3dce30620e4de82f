"""Importing the code does nothing: no settings read, no logging set up, nothing printed. Only
`create_app()` (uvicorn's factory), the CLI's `main()` and the tests build anything, so a tool,
a test or a worker that imports a module pays for and sees only what it asked for."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# Imports every module under app/ in a fresh interpreter, watching for a read of `.env` (every
# Settings() reads it when it exists) and for any log record; any finding goes to stderr.
IMPORT_EVERYTHING = """
import importlib, logging, pkgutil, sys

sys.path.insert(0, sys.argv[1])
env_reads = []
sys.addaudithook(
    lambda event, args: env_reads.append(args[0])
    if event == "open" and str(args[0]).endswith(".env") else None
)
records = []
collector = logging.Handler()
collector.emit = records.append
root = logging.getLogger()
root.addHandler(collector)
root.setLevel(logging.DEBUG)

import app
modules = [info.name for info in pkgutil.walk_packages(app.__path__, "app.")]
for name in modules:
    importlib.import_module(name)

problems = []
if "app.main" not in modules:
    problems.append(f"the walk missed modules: {modules}")
if env_reads:
    problems.append(f"settings were read: {env_reads}")
if records:
    problems.append(f"logged: {[record.getMessage() for record in records]}")
if root.handlers != [collector]:
    problems.append(f"logging was configured: {root.handlers}")
sys.exit("; ".join(problems) or None)
"""


def test_importing_every_app_module_reads_no_settings_and_prints_nothing(tmp_path: Path) -> None:
    # A directory with a `.env`, as a deployment has: reading settings would open it.
    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\n")
    result = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", IMPORT_EVERYTHING, str(ROOT)],
        cwd=tmp_path,
        env={},  # no SECRET_KEY, DATABASE_URL or anything else
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
