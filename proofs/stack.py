"""The processes a proof runs on, each private to the run and cleaned up with it: a PostgreSQL
cluster (initdb in a temp dir, run as the `postgres` OS user when we are root), a Redis server
(or a three-node Redis Cluster), instances of the service started by scripts/serve, and nginx on
the deployment's config. Ports are free ones on loopback; logs go to artifacts/<run>/ and stay
there for a look after a failure."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import redis

from harness import live_server, migrations, redis_cluster, reverse_proxy, worker
from harness.live_server import LiveServer, free_port
from harness.migrations import ROOT

SECRET_KEY = "proofs-secret-key-long-enough-for-production-0123456789"  # noqa: S105 (a fixture)
START_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 10.0
_stopping = threading.Event()  # set by SIGTERM: waits in helper threads give up at once


def wait_until(ready: Callable[[], bool], *, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _stopping.is_set():
        with contextlib.suppress(OSError, redis.RedisError):  # not up yet
            if ready():
                return
        time.sleep(0.1)
    if _stopping.is_set():
        raise RuntimeError(f"{what}: given up, the run is stopping")
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C does, so every `finally` and ExitStack cleans up."""

    def _exit(signum: int, _frame: FrameType | None) -> None:
        _stopping.set()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


class Workspace(ExitStack):
    """A temp dir for data and artifacts/<name>/ for logs. Closing it stops everything started
    in it, newest first, then removes the temp dir."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.logs = ROOT / "artifacts" / name
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"todo-{name}-"))
        self.dir.chmod(0o755)  # PostgreSQL and nginx workers run as other users
        self.callback(shutil.rmtree, self.dir, ignore_errors=True)


def _run(argv: list[str], *, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr or done.stdout}")


class Postgres:
    """A throwaway cluster on a free port; stop() and start() are the fault."""

    def __init__(self, space: Workspace) -> None:
        self.port = free_port()
        self.data = space.dir / "pgdata"
        self.log = space.logs / "postgres.log"
        self._bin = self._find_bin()
        root = os.geteuid() == 0
        # initdb refuses to run as root: as root, the cluster belongs to `postgres`.
        self._as_owner = ["runuser", "-u", "postgres", "--"] if root else []
        self.log.touch()
        if root:
            shutil.chown(self.log, "postgres")
            shutil.chown(space.dir, "postgres")
        initdb = [str(self._bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
        _run([*self._as_owner, *initdb, "-A", "trust", "-E", "UTF8", "--no-sync"], what="initdb")
        space.callback(self.stop)
        self.start()

    @staticmethod
    def _find_bin() -> Path:
        if configured := os.environ.get("PG_BIN"):
            return Path(configured)
        installed = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name)
        )
        if not installed:
            raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql (set PG_BIN)")
        return installed[-1]

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w"]
        _run([*self._as_owner, *pg_ctl, *args], what=f"pg_ctl {args[0]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._pg_ctl("start", "-o", options)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as far as PostgreSQL knows: recovery replays the WAL."""
        if self.running:
            self._pg_ctl("stop", "-m", mode)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        url = self.url(name)
        migrations.create_database(url)
        return url


class Redis:
    """redis-server on a free port, nothing persisted: kill() and start() empty it."""

    def __init__(self, space: Workspace) -> None:
        self.port = free_port()
        self.log = space.logs / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        space.callback(self.kill)
        self.start()

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--logfile", str(self.log)]
        self._process = process = subprocess.Popen(argv, start_new_session=True)  # noqa: S603
        client = redis.Redis(port=self.port, socket_timeout=1)

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({process.returncode}); see {self.log}")
            return bool(client.ping())

        wait_until(answers, what="redis-server")
        client.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        if self._process is not None and self.running:
            self._process.kill()
            self._process.wait()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def label(self) -> str:
        return f"Redis :{self.port}"


class RedisNodes:
    """A Redis Cluster of three primaries on free ports (harness/redis_cluster.py), nothing
    persisted: kill() and start() empty every node, which comes back with its slots."""

    def __init__(self, space: Workspace) -> None:
        self._cluster = redis_cluster.start_cluster(space.dir / "redis-cluster", space.logs)
        space.callback(self.kill)

    def start(self) -> None:
        for node in self._cluster.nodes:
            node.start()
        self._cluster.wait_ready()

    @property
    def running(self) -> bool:
        return all(node.running for node in self._cluster.nodes)

    def kill(self) -> None:
        self._cluster.stop()

    @property
    def port(self) -> int:
        """The node the service is given; it finds the others from it."""
        return self._cluster.nodes[0].port

    def url(self) -> str:
        return self._cluster.url

    @property
    def label(self) -> str:
        ports = ", ".join(f":{node.port}" for node in self._cluster.nodes)
        return f"Redis Cluster {ports}"

    def keys_per_node(self) -> list[int]:
        counts = []
        for node in self._cluster.nodes:
            with node.client() as client:
                counts.append(int(client.dbsize()))
        return counts


class Service:
    """The service as production runs it: scripts/serve (migrate, then uvicorn), one worker,
    on a port of its own that a restart keeps."""

    def __init__(self, space: Workspace, name: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://{live_server.HOST}:{self.port}"
        self.log = space.logs / f"{name}.log"
        self._env = {
            "ENVIRONMENT": "production",
            "SECRET_KEY": SECRET_KEY,
            "LOG_FORMAT": "json",
            **env,
        }
        self._server: LiveServer | None = None
        space.callback(self.stop)
        self.start()

    def start(self) -> None:
        command = [*live_server.SERVE, "--workers", "1", "--loop", "uvloop"]
        self._server = live_server.start(
            self.name,
            command=command,
            env=self._env,
            port=self.port,
            log=self.log,
            abandon=_stopping,
        )

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def pid(self) -> int:
        """The server process's id (scripts/serve execs uvicorn, one worker: the one process)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._server.process.pid

    def kill(self) -> None:
        """kill -9: no drain, no shutdown hooks; whatever was in flight is cut."""
        if self._server is not None:
            self._server.kill()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(STOP_GRACE_SECONDS)


class Nginx:
    """nginx on deploy/nginx.conf (see harness.reverse_proxy) over the instances; `location`:
    directives a proof adds to `location /`."""

    def __init__(
        self,
        space: Workspace,
        upstreams: list[Service],
        *,
        name: str = "nginx",
        location: Sequence[str] = (),
    ) -> None:
        self._server = reverse_proxy.start(
            name,
            upstreams=[up.port for up in upstreams],
            root=space.dir / name,
            logs=space.logs,
            location=location,
            abandon=_stopping,
        )
        self.port = self._server.port
        self.url = self._server.url
        space.callback(self.stop)

    def stop(self) -> None:
        self._server.stop(STOP_GRACE_SECONDS)


class Stores:
    """A private PostgreSQL holding the service's database, and a private Redis: one server,
    or with `redis_cluster` a three-node Redis Cluster."""

    def __init__(self, space: Workspace, *, redis_cluster: bool = False) -> None:
        self.postgres = Postgres(space)
        self.database_url = self.postgres.create_database("todo")
        self.redis: Redis | RedisNodes = RedisNodes(space) if redis_cluster else Redis(space)

    @property
    def env(self) -> dict[str, str]:
        """The service's settings that point at them."""
        env = {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url()}
        if isinstance(self.redis, RedisNodes):
            env["REDIS_CLUSTER"] = "true"
        return env


class JobWorker:
    """The job worker as production runs it (scripts/worker), beside the service, with its
    environment; kill() is a crash (-9), start() a new process."""

    def __init__(self, space: Workspace, name: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.log = space.logs / f"{name}.log"
        self._env = {
            "ENVIRONMENT": "production",
            "SECRET_KEY": SECRET_KEY,
            "LOG_FORMAT": "json",
            **env,
        }
        self._worker: worker.Worker | None = None
        space.callback(self.stop)
        self.start()

    def start(self) -> None:
        self._worker = worker.start(env=self._env, log=self.log)

    def kill(self) -> None:
        if self._worker is not None:
            self._worker.kill()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop(STOP_GRACE_SECONDS)
