"""wrk, one thread, driven by a script in bench/wrk/; the script's done() prints one JSON line
of results, which is what is read here (wrk's own text summary only goes to the log)."""

import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import ROOT

WRK = os.environ.get("WRK", "wrk")


@dataclass(frozen=True)
class Load:
    script: str
    """A file in bench/wrk/, e.g. list.lua."""
    connections: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int

    @property
    def answered_well(self) -> bool:
        """No non-2xx answer and no socket error (timeouts included)."""
        return self.non2xx == 0 and self.socket_errors == 0

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.answered_well

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TIMEOUT_SECONDS = 2.0
"""wrk's own: a request unanswered this long counts as a socket error (a timeout)."""


def _start(
    load: Load,
    url: str,
    seconds: int,
    env: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> subprocess.Popen[str]:
    script = ROOT / "bench" / "wrk" / load.script
    argv = [WRK, "-t1", f"-c{load.connections}", f"-d{seconds}s", f"--timeout={timeout:g}s"]
    argv += ["--latency", "-s", str(script)]
    return subprocess.Popen(  # noqa: S603 - wrk with our own arguments, no shell
        [*argv, url],
        cwd=ROOT,  # the scripts dofile() bench/wrk/common.lua from here
        env={**os.environ, **env, **load.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _result(process: subprocess.Popen[str], log: Path | None) -> Result:
    output, _ = process.communicate()
    if log is not None:
        with log.open("a", encoding="utf-8") as out:
            out.write(output + "\n")
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output[-2000:]}")
    return Result(**json.loads(lines[-1]))


def run(
    loads: Sequence[Load],
    url: str,
    seconds: float,
    env: Mapping[str, str],
    log: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[Result]:
    """Run the loads at once for `seconds`. wrk only takes whole seconds; a shorter run (a
    warm-up) is a longer one stopped with SIGINT, after which wrk still reports."""
    processes = [_start(load, url, max(1, math.ceil(seconds)), env, timeout) for load in loads]
    try:
        if seconds != math.ceil(seconds):
            time.sleep(seconds)
            for process in processes:
                process.send_signal(signal.SIGINT)
        return [_result(process, log) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def start(
    load: Load,
    url: str,
    seconds: int,
    env: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> subprocess.Popen[str]:
    """For a caller with its own work to do meanwhile (the soak samples memory)."""
    return _start(load, url, seconds, env, timeout)


def finish(process: subprocess.Popen[str], log: Path | None = None) -> Result:
    return _result(process, log)
