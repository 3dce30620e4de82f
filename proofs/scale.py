"""scripts/scale-proof: two instances of the service (scripts/serve, production settings)
behind nginx round-robin, on one PostgreSQL and one Redis (private ones, started and removed
here), and what must hold across them:

- the login limit is counted once for both instances (and a forged X-Forwarded-For, sent
  through nginx or straight to an instance, does not escape it);
- a logout on one instance is refused on the other;
- a spent refresh token presented to the other instance ends the login;
- an admin's role change (and deactivation) on one instance bites on the other at once;
- one Idempotency-Key sent to both instances creates one todo;
- a stale ETag from one instance is refused (412) on the other;
- a project member's role lowered on one instance, and then their removal, bite on the
  other's very next request;
- a change committed on one instance reaches a live-event stream served by the other within
  a second.

Requests alternate between the instances through nginx, whose answers name the instance in
`X-Upstream`, and go to each instance directly where a check needs one side for sure.
Prints each check PASS/FAIL with its counts; exits 1 if any fails.

It runs twice by default: on one Redis server, then on a three-node Redis Cluster
(REDIS_CLUSTER=true, harness/redis_cluster.py) with the same checks; `--redis single` or
`--redis cluster` runs one of them.
"""

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from proofs import db
from proofs.api import (
    API,
    PASSWORD,
    Reply,
    Report,
    call,
    client,
    create_todo,
    login,
    logout,
    new_token,
    new_user,
    refresh,
    shared_project,
    tally,
    unique_email,
)
from proofs.run import run_proof
from proofs.stack import Nginx, RedisNodes, Service, Stores, Workspace
from proofs.streams import Follower

# nginx reaches the instances from this loopback address, and the instances trust forwarded
# headers from it alone: a client on 127.0.0.1 cannot pose as the proxy.
PROXY_ADDRESS = "127.0.0.2"
TRUSTED_PROXY = {"TRUSTED_PROXIES": PROXY_ADDRESS}
# Added to the deployment's `location /`: nginx connects from PROXY_ADDRESS, tries one
# instance per request, and names in X-Upstream the instance that answered.
PROOF_LOCATION = (
    f"proxy_bind {PROXY_ADDRESS}",
    "proxy_next_upstream off",
    "add_header X-Upstream $upstream_addr always",
)
LOGIN_LIMIT = 5  # the service's default RATE_LIMIT_LOGIN, 5/minute per client and email
ADMIN_EMAIL = "admin@scale-proof.example.com"
FORGED = {"X-Forwarded-For": "203.0.113.7"}


@dataclass
class Cluster:
    a: httpx.AsyncClient  # instance A, directly
    b: httpx.AsyncClient  # instance B, directly
    lb: httpx.AsyncClient  # nginx, round-robin over A and B
    names: dict[str, str]  # X-Upstream address -> "A" / "B"
    database_url: str
    report: Report

    def served_by(self, reply: Reply) -> str:
        return self.names.get(reply.headers.get("x-upstream", ""), "?")

    def spread(self, replies: Sequence[Reply]) -> Counter[str]:
        return Counter(self.served_by(reply) for reply in replies)


def split(counts: Counter[str]) -> str:
    return ", ".join(f"{name}x{n}" for name, n in sorted(counts.items()))


async def round_robin(c: Cluster) -> None:
    replies = [await call(c.lb, "GET", "/health") for _ in range(6)]
    spread = c.spread(replies)
    c.report.check(
        "nginx sends requests to both instances",
        spread["A"] > 0 and spread["B"] > 0 and all(r.status == 200 for r in replies),
        f"{len(replies)} requests through nginx: {split(spread)}",
    )


async def login_limit(c: Cluster) -> None:
    plan = [(c.a, None), (c.lb, None), (c.b, None), (c.lb, FORGED), (c.a, FORGED)]
    plan += [(c.lb, None), (c.b, FORGED), (c.lb, None)]
    for _ in range(2):  # a second go if the limit's window turned during the first
        email = unique_email("limit")
        body = {"email": email, "password": "not-the-password-123"}
        replies = [
            await call(http, "POST", f"{API}/auth/login", json=body, headers=headers)
            for http, headers in plan
        ]
        if len({reply.headers.get("x-ratelimit-reset") for reply in replies}) == 1:
            break
    proxied = [reply for (http, _), reply in zip(plan, replies, strict=True) if http is c.lb]
    spread = c.spread(proxied)
    statuses = Counter(reply.status for reply in replies)
    c.report.check(
        f"login limit ({LOGIN_LIMIT} per client and email) counted across both instances",
        statuses == Counter({401: LOGIN_LIMIT, 429: len(plan) - LOGIN_LIMIT})
        and spread["A"] > 0
        and spread["B"] > 0,
        f"{len(plan)} failed logins for one email from one client: directly to A "
        f"{sum(http is c.a for http, _ in plan)}, to B {sum(http is c.b for http, _ in plan)}, "
        f"through nginx {len(proxied)} ({split(spread)}); "
        f"{sum(h is not None for _, h in plan)} with a forged X-Forwarded-For; "
        f"answers {tally(replies)}",
    )


async def revocation(c: Cluster) -> None:
    _, _, pair = await new_user(c.a, "revoke")
    token = pair["access_token"]
    before = await call(c.b, "GET", f"{API}/users/me", token=token)
    logged_out = await logout(c.a, pair)
    on_b = await call(c.b, "GET", f"{API}/users/me", token=token)
    proxied = [await call(c.lb, "GET", f"{API}/todos", token=token) for _ in range(4)]
    refreshed = await refresh(c.b, pair["refresh_token"])
    refused = [on_b, *proxied, refreshed]
    c.report.check(
        "logout on A is refused on B",
        before.status == 200 and logged_out.status == 204 and all(r.status == 401 for r in refused),
        f"before: B {before}; logout on A {logged_out}; then B {on_b}, through nginx "
        f"{tally(proxied)} ({split(c.spread(proxied))}), refresh on B {refreshed}",
    )


async def refresh_reuse(c: Cluster) -> None:
    _, _, first = await new_user(c.a, "reuse")
    rotated = await refresh(c.a, first["refresh_token"])
    reused = await refresh(c.b, first["refresh_token"])
    ok = rotated.status == 200
    second = rotated.body if ok else {"refresh_token": "", "access_token": ""}
    next_refresh = await refresh(c.a, second["refresh_token"])
    access = await call(c.b, "GET", f"{API}/users/me", token=second["access_token"])
    c.report.check(
        "a spent refresh token reused on B ends the login on both",
        ok
        and reused.status == 401
        and reused.code == "token_reused"
        and next_refresh.status == 401
        and access.status == 401,
        f"rotate on A {rotated}; the spent token on B {reused}; the newer refresh token on A "
        f"{next_refresh}; its access token on B {access}",
    )


async def role_change(c: Cluster) -> None:
    _, user_id, pair = await new_user(c.b, "role")
    token = pair["access_token"]
    # Both instances read the user (and may keep them) before the change.
    warm = [
        await create_todo(c.b, token, "role: before, on B"),
        await call(c.a, "GET", f"{API}/users/me", token=token),
    ]
    admin = (await login(c.a, ADMIN_EMAIL, PASSWORD))["access_token"]
    user_path = f"{API}/users/{user_id}"
    demote = await call(c.a, "PATCH", user_path, token=admin, json={"role": "guest"})
    on_b = await create_todo(c.b, token, "role: as guest, on B")
    me_b = await call(c.b, "GET", f"{API}/users/me", token=token)
    proxied = [await create_todo(c.lb, token, "role: as guest, via nginx") for _ in range(2)]
    promote = await call(c.b, "PATCH", user_path, token=admin, json={"role": "user"})
    on_a = await create_todo(c.a, token, "role: user again, on A")
    disable = await call(c.b, "PATCH", user_path, token=admin, json={"is_active": False})
    disabled_a = await call(c.a, "GET", f"{API}/users/me", token=token)
    guest_seen = me_b.ok and me_b.body.get("role") == "guest"
    c.report.check(
        "role change and deactivation on one instance bite on the other's next request",
        all(reply.ok for reply in warm)
        and demote.status == 200
        and on_b.status == 403
        and guest_seen
        and all(reply.status == 403 for reply in proxied)
        and promote.status == 200
        and on_a.status == 201
        and disable.status == 200
        and disabled_a.status == 401,
        f"before: {tally(warm)}; demoted to guest on A {demote}: POST on B {on_b}, "
        f"/users/me on B says {me_b.body.get('role') if me_b.ok else me_b}, POST through nginx "
        f"{tally(proxied)} ({split(c.spread(proxied))}); promoted on B {promote}: POST on A "
        f"{on_a}; deactivated on B {disable}: /users/me on A {disabled_a}",
    )


async def idempotency(c: Cluster) -> None:
    token = await new_token(c.lb, "idem")
    titles = {f"key-{i}": f"scale-idem key-{i}" for i in range(5)}
    concurrent: list[Reply] = []
    replays: list[Reply] = []
    disagree = 0
    for key, title in titles.items():
        at_once = await asyncio.gather(
            *(create_todo(http, token, title, key=key) for http in (c.a, c.b, c.lb))
        )
        later = [await create_todo(http, token, title, key=key) for http in (c.b, c.a)]
        concurrent += at_once
        replays += later
        ids = {reply.body["id"] for reply in [*at_once, *later] if reply.status in (200, 201)}
        disagree += len(ids) != 1
    made = db.todos_per_key(c.database_url, titles)
    replayed = sum(reply.headers.get("idempotent-replayed") == "true" for reply in replays)
    c.report.check(
        "one Idempotency-Key sent to both instances creates one todo",
        made.each_once and not disagree and replayed == len(replays),
        f"{len(titles)} keys, each sent to A, B and nginx at once: {tally(concurrent)}; then "
        f"to B and A: {tally(replays)}, {replayed} marked Idempotent-Replayed; keys answered "
        f"with more than one todo {disagree}; in the database: exactly one todo "
        f"{made.once}, more than one {made.more}",
    )


async def if_match(c: Cluster) -> None:
    token = await new_token(c.a, "etag")
    created = await create_todo(c.a, token, "etag: first")
    path = f"{API}/todos/{created.body['id']}"
    stale = created.headers.get("etag", "")
    fresh = await call(
        c.b, "PATCH", path, token=token, headers={"If-Match": stale}, json={"title": "etag: on B"}
    )
    refused = [
        await call(
            c.a, "PATCH", path, token=token, headers={"If-Match": stale}, json={"title": "x"}
        ),
        await call(
            c.lb, "PATCH", path, token=token, headers={"If-Match": stale}, json={"title": "y"}
        ),
        await call(c.a, "DELETE", path, token=token, headers={"If-Match": stale}),
    ]
    after = await call(c.a, "GET", path, token=token)
    c.report.check(
        "a stale ETag from A is refused on the other instance (412) and changes nothing",
        created.status == 201
        and fresh.status == 200
        and all(r.status == 412 and r.code == "precondition_failed" for r in refused)
        and after.ok
        and after.body["title"] == "etag: on B"
        and after.headers.get("etag") == fresh.headers.get("etag"),
        f"created on A {created} (ETag {stale}); PATCH on B with it {fresh} "
        f"(ETag {fresh.headers.get('etag')}); the stale ETag again: PATCH on A, PATCH through "
        f"nginx ({c.served_by(refused[1])}), DELETE on A: {tally(refused)}; then A reads "
        f"{after.body.get('title') if after.ok else after!s}, ETag {after.headers.get('etag')}",
    )


async def membership(c: Cluster) -> None:
    owner = await new_token(c.a, "owner")
    _, member_id, pair = await new_user(c.b, "member")
    member = pair["access_token"]
    project_id = await shared_project(c.a, owner, c.b, member, "editor")
    members = f"{API}/projects/{project_id}/members/{member_id}"
    # Both instances serve the member before the changes.
    made = await create_todo(c.b, member, "shared: by the editor, on B", project_id=project_id)
    todo = f"{API}/todos/{made.body.get('id')}"
    warm = [made, await call(c.a, "GET", todo, token=member)]
    lowered = await call(c.a, "PATCH", members, token=owner, json={"role": "viewer"})
    as_viewer_b = await create_todo(c.b, member, "shared: as viewer, on B", project_id=project_id)
    as_viewer_lb = [
        await create_todo(c.lb, member, "shared: as viewer, via nginx", project_id=project_id)
        for _ in range(2)
    ]
    still_reads = await call(c.b, "GET", todo, token=member)
    removed = await call(c.b, "DELETE", members, token=owner)
    gone_a = await call(c.a, "GET", todo, token=member)
    gone_lb = [await call(c.lb, "GET", todo, token=member) for _ in range(2)]
    project_a = await call(c.a, "GET", f"{API}/projects/{project_id}", token=member)
    c.report.check(
        "a member's lowered role and removal on one instance bite on the other's next request",
        all(reply.ok for reply in warm)
        and lowered.status == 200
        and as_viewer_b.status == 403
        and all(reply.status == 403 for reply in as_viewer_lb)
        and still_reads.status == 200
        and removed.status == 204
        and gone_a.status == 404
        and all(reply.status == 404 for reply in gone_lb)
        and project_a.status == 404,
        f"before: {tally(warm)}; lowered to viewer on A {lowered}: POST in the project on B "
        f"{as_viewer_b}, through nginx {tally(as_viewer_lb)} ({split(c.spread(as_viewer_lb))}),"
        f" GET of its todo on B {still_reads}; removed on B {removed}: GET of the todo on A "
        f"{gone_a}, through nginx {tally(gone_lb)} ({split(c.spread(gone_lb))}), the project "
        f"on A {project_a}",
    )


LIVE_WITHIN_SECONDS = 1.0


async def live_events(c: Cluster) -> None:
    token = await new_token(c.a, "streamer")
    follower = Follower([str(c.b.base_url)], token)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        await asyncio.sleep(1.0)  # the stream is open on B, its feed subscribed
        latencies = []
        made = []
        for n in range(5):
            sent = time.monotonic()
            reply = await create_todo(c.a, token, f"live: written on A #{n}")
            made.append(reply)
            todo_id = str(reply.body.get("id")) if reply.ok else ""
            arrived = await follower.has(todo_id, 5)
            latencies.append(float("inf") if arrived is None else arrived - sent)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    c.report.check(
        "a change committed on A reaches a live-event stream on B within a second",
        all(reply.status == 201 for reply in made)
        and follower.opened >= 1
        and max(latencies) < LIVE_WITHIN_SECONDS,
        f"5 todos created on A {tally(made)}; the stream on B (opened {follower.opened}, "
        f"refused {dict(follower.refused)}) had each after "
        + ", ".join(f"{1000 * seconds:.0f} ms" for seconds in latencies),
    )


CHECKS: list[Callable[[Cluster], Awaitable[None]]] = [
    round_robin,
    login_limit,
    revocation,
    refresh_reuse,
    role_change,
    idempotency,
    if_match,
    membership,
    live_events,
]


def prove(space: Workspace, stores: Stores, report: Report) -> None:
    env = {
        **stores.env,
        **TRUSTED_PROXY,
        "FIRST_ADMIN_EMAIL": ADMIN_EMAIL,
        "FIRST_ADMIN_PASSWORD": PASSWORD,
        "RATE_LIMIT_REGISTER": "1000/hour",  # every user here registers from one address
    }
    # One after the other: the first migrates, the second finds the schema at head.
    a = Service(space, "instance-a", env)
    b = Service(space, "instance-b", env)
    nginx = Nginx(space, [a, b], location=PROOF_LOCATION)
    print(
        f"nginx {nginx.url} -> A {a.url}, B {b.url}; PostgreSQL :{stores.postgres.port}, "
        f"{stores.redis.label}; logs in {space.logs}",
        flush=True,
    )

    async def run() -> None:
        async with client(a.url) as on_a, client(b.url) as on_b, client(nginx.url) as on_lb:
            names = {f"127.0.0.1:{a.port}": "A", f"127.0.0.1:{b.port}": "B"}
            cluster = Cluster(on_a, on_b, on_lb, names, stores.database_url, report)
            for check in CHECKS:
                try:
                    await check(cluster)
                except Exception as exc:  # the check could not finish: it fails
                    report.check(check.__name__, False, f"{type(exc).__name__}: {exc}")

    asyncio.run(run())
    if isinstance(stores.redis, RedisNodes):
        report.note(f"keys on the cluster's nodes at the end: {stores.redis.keys_per_node()}")


MODES = {"single": False, "cluster": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis",
        choices=[*MODES, "both"],
        default="both",
        help="one Redis server, a three-node Redis Cluster, or both in turn (the default)",
    )
    chosen = parser.parse_args(argv).redis
    failed = 0
    for mode, cluster in MODES.items():
        if chosen in (mode, "both"):
            name = "scale-proof-cluster" if cluster else "scale-proof"
            failed |= run_proof(name, prove, redis_cluster=cluster)
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
