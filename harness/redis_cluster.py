"""A Redis Cluster on loopback, as the tests and scripts/scale-proof start one: three
`redis-server --cluster-enabled yes` on free ports, each in a directory of its own, joined by
`redis-cli --cluster create` with no replicas (every node a primary holding a third of the
slots). Nothing is persisted: a node restarted comes back empty, holding the same slots."""

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.live_server import HOST, free_port

START_SECONDS = 30.0


def available() -> bool:
    """Whether this machine can start one (the tests skip their cluster cases if not)."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


@dataclass
class Node:
    port: int
    bus_port: int  # its own free one: the default, port + 10 000, may be taken or past 65 535
    directory: Path
    log: Path
    process: "subprocess.Popen[bytes] | None" = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", HOST]
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        argv += ["--cluster-port", str(self.bus_port)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        argv += ["--logfile", str(self.log)]
        self.process = subprocess.Popen(argv, start_new_session=True)  # noqa: S603

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.running:
            self.process.kill()
            self.process.wait()

    def client(self) -> redis.Redis:
        """A plain client of this node alone (its own slots only)."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2)


@dataclass
class LocalCluster:
    """Started by `start_cluster`; `stop()` kills every node."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """REDIS_URL for the service (with REDIS_CLUSTER=true): one node; the rest are found."""
        return f"redis://{HOST}:{self.nodes[0].port}"

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def node_holding(self, key: str) -> Node:
        """The node whose slots hold `key`."""
        for node in self.nodes:
            with node.client() as client:
                try:
                    client.execute_command("TYPE", key)
                except redis.exceptions.MovedError:  # the key's slot is another node's
                    continue
                return node
        raise RuntimeError(f"no node holds {key}")

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(_state_ok(node) for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Redis Cluster was not ready within {timeout:.0f} s")


def _state_ok(node: Node) -> bool:
    try:
        with node.client() as client:
            info = client.execute_command("CLUSTER INFO")
    except redis.RedisError:
        return False
    return bool(info.get("cluster_state") == "ok")  # redis-py parses the reply into a dict


def start_cluster(directory: Path, logs: Path, *, nodes: int = 3) -> LocalCluster:
    """`nodes` primaries on free ports, data in `directory`, logs in `logs`; ready to serve."""
    cluster = LocalCluster()
    try:
        for number in range(nodes):
            node_dir = directory / f"redis-node-{number}"
            node_dir.mkdir(parents=True, exist_ok=True)
            node = Node(free_port(), free_port(), node_dir, logs / f"redis-node-{number}.log")
            node.start()
            cluster.nodes.append(node)
        for node in cluster.nodes:
            _wait_answers(node)
        create = ["redis-cli", "--cluster", "create"]
        create += [f"{HOST}:{node.port}" for node in cluster.nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_answers(node: Node) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if not node.running:
            raise RuntimeError(f"redis-server exited; see {node.log}")
        try:
            with node.client() as client:
                if client.ping():
                    return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on :{node.port} did not answer; see {node.log}")
