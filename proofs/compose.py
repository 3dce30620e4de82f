"""scripts/compose-proof: the production stack (docker-compose.yml) as a deployer starts it,
with three api replicas behind nginx, proved through its one published port:

- the stack comes up healthy with `--scale api=3` (no api replica publishes a port), each
  replica running as uid 10001;
- the replicas started together migrated one at a time: one of them ran the migrations, the
  database has one version row, at head;
- register, login, create and list work through the published port;
- requests through it are served by every replica (each replica's own access log names the
  request ids it answered), each seeing the client's address, not nginx's;
- a logout is honoured by every replica: the logged-out token is refused by all three;
- the worker service runs, as uid 10001, and makes a webhook's attempts (a ping to a public
  address, which this machine cannot reach: the delivery log records the attempt and why it
  failed).

Then the stack is stopped and its containers, volumes and networks removed (the built image
is kept for the next run's build cache). Prints each check PASS/FAIL and the time taken;
exits 1 if any check fails or the stack does not come up.
"""

import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
from alembic.script import ScriptDirectory

from harness.live_server import free_port
from harness.migrations import ROOT, alembic_config
from proofs.api import API, Report, call, client, create_todo, logout, new_user, tally
from proofs.stack import stop_on_sigterm

PROJECT = "todo-compose-proof"
REPLICAS = 3
# Requests sent for each spread check: round-robin over three replicas gives each ten.
SPREAD = 30
NGINX_ADDRESS = "172.28.0.10"  # docker-compose.yml's fixed address for nginx
APP_UID = "10001"
READY_SECONDS = 180.0
LOGS = ROOT / "artifacts" / "compose-proof"


def compose_command() -> list[str]:
    """`docker compose` (the CLI plugin) where there is one, else `docker-compose`."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"],  # noqa: S607 (docker from PATH, as a user runs it)
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("compose-proof: neither `docker compose` nor `docker-compose` is installed")


class Stack:
    """docker-compose.yml under a project name of its own, with generated secrets."""

    def __init__(self, compose: list[str], port: int) -> None:
        self.compose = [*compose, "--project-name", PROJECT, "--file", "docker-compose.yml"]
        # A host whose own descriptor limit is below the compose file's cannot give it to a
        # container: the replicas get what the host allows.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
        self.env = {
            **os.environ,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
            "HTTP_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(port),
            "NOFILE_LIMIT": os.environ.get("NOFILE_LIMIT", str(nofile)),
        }
        self.url = f"http://127.0.0.1:{port}"

    def run(self, *args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 (our own command line)
            [*self.compose, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if log is not None:
            log.write_text(result.stdout + result.stderr)
        return result

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).stdout.split()

    def leftovers(self) -> dict[str, list[str]]:
        """What still carries the project's label: containers, volumes, networks."""
        label = f"label=com.docker.compose.project={PROJECT}"
        found = {}
        for kind, listing in (
            ("containers", ["ps", "-a", "-q"]),
            ("volumes", ["volume", "ls", "-q"]),
            ("networks", ["network", "ls", "-q"]),
        ):
            found[kind] = docker(*listing, "--filter", label).split()
        return found


def docker(*args: str) -> str:
    result = subprocess.run(  # noqa: S603 (our own command line)
        ["docker", *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def container_log(container: str) -> str:
    """Everything the container wrote (uvicorn's lines go to stderr, the app's to stdout)."""
    result = subprocess.run(  # noqa: S603 (our own command line)
        ["docker", "logs", container],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def access_lines(container: str, prefix: str) -> list[dict[str, object]]:
    """The container's JSON access lines for the requests whose ids start with `prefix`."""
    lines = []
    for line in container_log(container).splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == "app.access" and str(record.get("request_id", "")).startswith(
            prefix
        ):
            lines.append(record)
    return lines


def served_by(containers: Sequence[str], prefix: str) -> dict[str, list[dict[str, object]]]:
    return {container: access_lines(container, prefix) for container in containers}


async def wait_until_ready(http: httpx.AsyncClient) -> bool:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        reply = await call(http, "GET", "/health/ready")
        if reply.status == 200:
            return True
        await asyncio.sleep(1)
    return False


def check_replicas(stack: Stack, report: Report) -> list[str]:
    replicas = stack.containers("api")
    health = [docker("inspect", "--format", "{{.State.Health.Status}}", c) for c in replicas]
    report.check(
        f"{REPLICAS} api replicas, each healthy (GET /health/ready)",
        len(replicas) == REPLICAS and all(status == "healthy" for status in health),
        ", ".join(health) or "none",
    )
    published = {c[:12]: docker("port", c) for c in replicas}
    report.check(
        "no api replica publishes a port (nginx is the one entry point)",
        not any(published.values()),
        ", ".join(f"{c}: {ports or 'none'}" for c, ports in published.items()),
    )
    uids = [docker("exec", c, "id", "-u") for c in replicas]
    report.check(
        f"each replica runs as uid {APP_UID}",
        uids == [APP_UID] * len(replicas),
        ", ".join(uids),
    )
    return replicas


def check_migrations(stack: Stack, replicas: Sequence[str], report: Report) -> None:
    migrated = [c[:12] for c in replicas if "Running upgrade  -> 0001" in container_log(c)]
    query = "SELECT version_num FROM alembic_version"
    result = stack.run(
        "exec",
        "-T",
        "postgres",
        "sh",
        "-c",
        f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{query}"',
    )
    versions = result.stdout.split()
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    report.check(
        "replicas started together migrated once, under the lock: one version row, at head",
        len(migrated) == 1 and versions == [head],
        f"migrated by {migrated}; alembic_version {versions}; head {head}",
    )


async def check_api(stack: Stack, replicas: Sequence[str], report: Report) -> None:
    run = secrets.token_hex(4)
    async with client(stack.url, connections=4) as http:
        ready = await call(http, "GET", "/health/ready")
        report.check(
            "GET /health/ready through the published port",
            ready.status == 200,
            f"{ready} {ready.body}",
        )
        _, _, pair = await new_user(http, "compose")
        token = pair["access_token"]
        created = await create_todo(http, token, "Proved through nginx")
        listed = await call(http, "GET", f"{API}/todos", token=token)
        titles = [item["title"] for item in listed.body["items"]] if listed.ok else []
        report.check(
            "register, login, create and list through the published port",
            created.status == 201 and titles == ["Proved through nginx"],
            f"create {created}, list {listed} {titles}",
        )

        spread_prefix = f"proof-{run}-spread-"
        replies = [
            await call(
                http,
                "GET",
                f"{API}/todos",
                token=token,
                headers={"X-Request-ID": f"{spread_prefix}{i}"},
            )
            for i in range(SPREAD)
        ]
        seen = served_by(replicas, spread_prefix)
        counts = Counter({c[:12]: len(lines) for c, lines in seen.items()})
        report.check(
            f"{SPREAD} requests through the port served by every replica",
            all(reply.status == 200 for reply in replies)
            and len(seen) == REPLICAS
            and all(counts.values())
            and sum(counts.values()) == SPREAD,
            f"{tally(replies)}; per replica {dict(counts)}",
        )
        clients = {str(line.get("client")) for lines in seen.values() for line in lines}
        report.check(
            "each replica logs the client's address, not nginx's (TRUSTED_PROXIES)",
            bool(clients) and NGINX_ADDRESS not in clients,
            f"clients {sorted(clients)}",
        )

        out = await logout(http, pair)
        revoked_prefix = f"proof-{run}-revoked-"
        refused = [
            await call(
                http,
                "GET",
                f"{API}/todos",
                token=token,
                headers={"X-Request-ID": f"{revoked_prefix}{i}"},
            )
            for i in range(SPREAD)
        ]
        seen = served_by(replicas, revoked_prefix)
        statuses = {
            c[:12]: sorted({str(line.get("message", "")).split()[2] for line in lines})
            for c, lines in seen.items()
        }
        report.check(
            "a logout is honoured by every replica: the token is refused (401) by all",
            out.status == 204
            and all(reply.status == 401 for reply in refused)
            and len(statuses) == REPLICAS
            and all(found == ["401"] for found in statuses.values()),
            f"logout {out}; then {tally(refused)}; statuses per replica {statuses}",
        )


async def check_worker(stack: Stack, report: Report) -> None:
    workers = stack.containers("worker")
    uids = [docker("exec", c, "id", "-u") for c in workers]
    report.check(
        f"the worker service runs, as uid {APP_UID}",
        len(workers) == 1 and uids == [APP_UID],
        f"{len(workers)} running; uids {uids}",
    )
    async with client(stack.url, connections=2) as http:
        _, _, pair = await new_user(http, "compose-worker")
        token = pair["access_token"]
        body = {"url": "http://1.1.1.1/hook", "events": ["*"]}
        hook = await call(http, "POST", f"{API}/webhooks", token=token, json=body)
        ping = (
            await call(http, "POST", f"{API}/webhooks/{hook.body['id']}/ping", token=token)
            if hook.status == 201
            else hook
        )
        attempted: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while ping.status == 202 and not attempted and time.monotonic() < deadline:
            await asyncio.sleep(1)
            log = await call(
                http, "GET", f"{API}/webhooks/{hook.body['id']}/deliveries", token=token
            )
            attempted = [d for d in log.body["items"] if d["attempts"]] if log.ok else []
        report.check(
            "the worker makes a webhook's attempt (the delivery log records it)",
            bool(attempted),
            f"webhook {hook}, ping {ping}; "
            + (
                f"attempt: {attempted[0]['status']} {attempted[0]['error']}"
                if attempted
                else "none"
            ),
        )


def prove(stack: Stack, report: Report) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    up = stack.run("up", "-d", "--build", "--scale", f"api={REPLICAS}", log=LOGS / "up.log")
    came_up = up.returncode == 0 and asyncio.run(_ready(stack))
    report.check(
        f"docker-compose.yml up with --scale api={REPLICAS}, ready through {stack.url}",
        came_up,
        f"{time.monotonic() - started:.0f} s (build included); log {LOGS / 'up.log'}",
    )
    if not came_up:
        report.note((up.stdout + up.stderr)[-3000:])
        return
    replicas = check_replicas(stack, report)
    check_migrations(stack, replicas, report)
    asyncio.run(check_api(stack, replicas, report))
    asyncio.run(check_worker(stack, report))


async def _ready(stack: Stack) -> bool:
    async with client(stack.url, connections=1) as http:
        return await wait_until_ready(http)


def main() -> int:
    stop_on_sigterm()
    started = time.monotonic()
    stack = Stack(compose_command(), free_port())
    report = Report("compose-proof")
    if any(stack.leftovers().values()):
        print(f"compose-proof: project {PROJECT} is already running (another run?); stop it with")
        print(f"  docker-compose --project-name {PROJECT} down --volumes")
        return 1
    try:
        prove(stack, report)
    finally:
        stack.run("logs", "--no-color", log=LOGS / "stack.log")
        stack.run("down", "--volumes", "--remove-orphans", "--timeout", "30", log=LOGS / "down.log")
        left = stack.leftovers()
        report.check(
            "stopped and removed: no container, volume or network of the project left",
            not any(left.values()),
            ", ".join(f"{kind} {len(ids)}" for kind, ids in left.items()),
        )
        print(f"{time.monotonic() - started:.0f} s in all; logs in {LOGS}")
    return report.close()


if __name__ == "__main__":
    sys.exit(main())
