"""Calling webhook receivers over HTTP, only where the service may call (SSRF defence).

A URL must be http(s), carry no credentials, and its host must resolve only to public
addresses: loopback, private, link-local, multicast, unspecified, shared (100.64.0.0/10) and
reserved ones are refused, as are the IPv4 addresses hidden in IPv4-mapped, NAT64, 6to4 and
Teredo IPv6 forms. The check runs at creation and again at every attempt, and the attempt
connects to the very address it checked: the URL's host is replaced by that address, the
`Host` header (and, over TLS, the SNI name the certificate is checked against) keep the name.
No second lookup happens, so a DNS answer that changes between check and connect (DNS
rebinding) changes nothing. Redirects are never followed, and at most MAX_RESPONSE_BYTES of an
answer are read.
"""

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from app.domain.errors import WebhookUrlNotAllowed
from app.domain.webhooks import URL_MAX_LENGTH, DeliveryError, Outcome

MAX_RESPONSE_BYTES = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(address: _IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public(address: _IPAddress) -> bool:
    """Whether the service may call it: a global unicast address, whatever form it takes."""
    inner = _embedded_ipv4(address)
    if inner is not None and not is_public(inner):
        return False
    return address.is_global and not address.is_multicast


class HttpWebhookTransport:
    def __init__(self, *, timeout_seconds: float, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the checked address is called
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._timeout = timeout_seconds

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check(self, url: str) -> None:
        await self._resolve(url)

    async def _resolve(self, url: str) -> tuple[SplitResult, str]:
        """The URL's parts and the address to connect to, or WebhookUrlNotAllowed."""
        if len(url) > URL_MAX_LENGTH:
            raise WebhookUrlNotAllowed(f"At most {URL_MAX_LENGTH} characters.")
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise WebhookUrlNotAllowed("Not a valid URL.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookUrlNotAllowed("The URL must be http:// or https:// with a host.")
        if parts.username is not None or parts.password is not None:
            raise WebhookUrlNotAllowed("The URL must not carry credentials.")
        host = parts.hostname
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError):
                raise WebhookUrlNotAllowed(f"The host {host!r} does not resolve.") from None
            addresses = [ipaddress.ip_address(info[4][0]) for info in found]
        if not addresses:
            raise WebhookUrlNotAllowed(f"The host {host!r} does not resolve.")
        if not self._allow_private and not all(is_public(a) for a in addresses):
            raise WebhookUrlNotAllowed(
                "The URL resolves to an address webhooks may not call "
                "(loopback, private, link-local, shared or reserved)."
            )
        return parts, str(addresses[0])

    async def send(self, url: str, *, headers: Mapping[str, str], body: bytes) -> Outcome:
        started = time.perf_counter()

        def outcome(status: int | None, error: DeliveryError | None) -> Outcome:
            return Outcome(status, error, round((time.perf_counter() - started) * 1000))

        try:
            parts, address = await self._resolve(url)
        except WebhookUrlNotAllowed:
            return outcome(None, DeliveryError.TARGET_NOT_ALLOWED)
        host = f"[{address}]" if ":" in address else address
        netloc = f"{host}:{parts.port}" if parts.port else host
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        request_headers = {**headers, "host": parts.netloc}
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        request = self._client.build_request(
            "POST", target, headers=request_headers, content=body, extensions=extensions
        )
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.send(request, stream=True)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return outcome(None, DeliveryError.TIMEOUT)
        except httpx.TransportError:
            return outcome(None, DeliveryError.CONNECTION_REFUSED)
        error = None if 200 <= response.status_code < 300 else DeliveryError.HTTP_STATUS
        return outcome(response.status_code, error)
