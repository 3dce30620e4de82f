"""SSRF defence: which addresses a webhook may call, checked at creation and at delivery."""

import ipaddress

import pytest

from app.domain.errors import WebhookUrlNotAllowed
from app.domain.webhooks import DeliveryError
from app.infrastructure.webhook_http import HttpWebhookTransport, is_public

REFUSED = [
    "http://127.0.0.1:8000/",
    "http://localhost/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[ff02::1]/",
]


@pytest.fixture
async def strict() -> HttpWebhookTransport:
    return HttpWebhookTransport(timeout_seconds=2, allow_private=False)


@pytest.mark.parametrize("url", REFUSED)
async def test_an_internal_target_is_refused_at_creation_and_at_delivery(
    strict: HttpWebhookTransport, url: str
) -> None:
    with pytest.raises(WebhookUrlNotAllowed):
        await strict.check(url)
    outcome = await strict.send(url, headers={}, body=b"{}")
    assert (outcome.error, outcome.response_status) == (DeliveryError.TARGET_NOT_ALLOWED, None)
    await strict.aclose()


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://user:secret@example.com/", "http:///x", "//x"]
)
async def test_only_http_urls_without_credentials(strict: HttpWebhookTransport, url: str) -> None:
    with pytest.raises(WebhookUrlNotAllowed):
        await strict.check(url)
    await strict.aclose()


def test_public_addresses_are_callable() -> None:
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"):
        assert is_public(ipaddress.ip_address(address))
    assert not is_public(ipaddress.ip_address("::ffff:192.168.0.1"))


async def test_private_targets_may_be_allowed_for_development() -> None:
    lenient = HttpWebhookTransport(timeout_seconds=2, allow_private=True)
    await lenient.check("http://127.0.0.1:9/")
    outcome = await lenient.send("http://127.0.0.1:9/", headers={}, body=b"{}")
    assert outcome.error is DeliveryError.CONNECTION_REFUSED
    await lenient.aclose()
