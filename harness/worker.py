"""The job worker started from outside the service, as the tests and the fault suite start it:
`scripts/worker`, in a process group of its own, its output appended to a log file. `start`
returns once the worker says it has started (an INFO line: LOG_LEVEL must let it through);
`stop` sends SIGTERM (jobs in flight finish), then SIGKILLs whatever is left; `kill` is a
crash."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.migrations import ROOT

WORKER = (str(ROOT / "scripts" / "worker"),)
STARTED = b"worker started"
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class Worker:
    process: "subprocess.Popen[bytes]"
    log: Path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, grace: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        code = self.process.poll()
        self.kill()
        return self.process.returncode if code is None else code


def start(*, env: Mapping[str, str], log: Path, baseline: Mapping[str, str] = os.environ) -> Worker:
    environment = {
        **baseline,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{baseline.get('PATH', '')}",
        **env,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        start_at = out.tell()
        process = subprocess.Popen(  # noqa: S603 - our own command, no shell
            WORKER,
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if STARTED in log.read_bytes()[start_at:]:
            return worker
        if process.poll() is not None:
            break
        time.sleep(0.1)
    worker.stop()
    tail = log.read_bytes()[start_at:][-3000:].decode(errors="replace")
    raise RuntimeError(f"the worker did not start (exit {process.returncode}):\n{tail}")
