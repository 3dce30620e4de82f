"""Whose address counts: the peer's, unless the peer is a proxy named in TRUSTED_PROXIES.

Rate limits key on the client address. A server that believes any X-Forwarded-For lets a
client pick a new address per request and never meet a limit."""

import httpx

from tests.serving import Serve
from tests.support import API

# A window no test run crosses (limits are counted in clock-aligned windows).
LOGIN_LIMIT = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_LOGIN": "5/day"}


def wrong_login(http: httpx.Client, email: str, forwarded_for: str) -> int:
    response = http.post(
        f"{API}/auth/login",
        json={"email": email, "password": "not the password"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def test_rotating_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_login_limit(
    serve: Serve,
) -> None:
    with serve(**LOGIN_LIMIT) as server, httpx.Client(base_url=server.url) as http:
        statuses = [wrong_login(http, "victim@example.com", f"203.0.113.{n}") for n in range(1, 8)]
    assert statuses == [401] * 5 + [429] * 2


def test_a_trusted_proxy_s_forwarded_address_is_the_client(serve: Serve) -> None:
    with (
        serve(**LOGIN_LIMIT, TRUSTED_PROXIES="10.255.255.1, 127.0.0.0/8") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        one_client = [wrong_login(http, "victim@example.com", "203.0.113.7") for _ in range(6)]
        # A proxy appends the peer it saw: a client's own X-Forwarded-For is not believed.
        spoofed = wrong_login(http, "victim@example.com", "198.51.100.1, 203.0.113.7")
        another_client = wrong_login(http, "victim@example.com", "203.0.113.8")
    assert one_client == [401] * 5 + [429]
    assert spoofed == 429
    assert another_client == 401
