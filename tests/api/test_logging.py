"""What reaches the log: one line per event whatever a client sends, every control character
escaped, in both formats."""

import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.infrastructure.audit import LoggingAuditTrail
from app.logs import ConsoleFormatter, JsonFormatter, configure_logging
from app.main import create_app
from tests.support import restored_logging

# CR LF and a line that looks like the service's own, an ANSI colour, a bidi override (which
# shows what follows reversed), a zero-width space, a C1 control (NEL, a line break to some).
FORGED_PATH = (
    "/x%0d%0a2026-01-01 00:00:00,000 INFO app.access [-] GET /admin 200"
    "%1b[31m%E2%80%AEgpj.exe%E2%80%8B%C2%85"
)
RAW_CONTROLS = ("\r", "\n", "\x1b", "\u202e", "\u200b", "\x85")
ESCAPED = ("\\r\\n", "\\x1b[31m", "\\u202egpj.exe\\u200b\\x85")


@pytest.fixture
async def logging_client(
    settings: Settings, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Callable[[str], Any]]:
    """A client on an app that logs in `fmt` at INFO to the captured stdout (the client's own
    request lines left out)."""
    caplog.set_level(logging.WARNING, logger="httpx")
    clients: list[AsyncClient] = []

    async def build(fmt: str) -> AsyncClient:
        app = create_app(settings.model_copy(update={"log_level": "INFO", "log_format": fmt}))
        capsys.readouterr()  # start-up lines are not the test's
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
        clients.append(http)
        return http

    yield build
    for http in clients:
        await http.aclose()


def access_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "app.access" in line]


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_forged_path_is_one_access_line_with_its_controls_escaped(
    logging_client: Callable[[str], Any], capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    client = await logging_client(fmt)
    response = await client.get(FORGED_PATH)
    assert response.status_code == 404

    out = capsys.readouterr().out
    lines = out.splitlines()
    # Nothing but the access line was written, and it is one line.
    assert len(lines) == 1, lines
    assert access_lines(out) == lines
    line = lines[0]
    assert not any(char in line for char in RAW_CONTROLS)
    text = json.loads(line)["message"] if fmt == "json" else line
    for escaped in ESCAPED:
        assert escaped in text


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("app.test", logging.ERROR, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize(
    "formatter", [ConsoleFormatter(), JsonFormatter()], ids=["console", "json"]
)
def test_exception_messages_and_extras_are_escaped_onto_one_line(
    formatter: logging.Formatter,
) -> None:
    try:
        raise ValueError("bad\r\nINFO forged line \x1b[2J\u2066")
    except ValueError as exc:
        record = _record("failed on %s", "/p\n", exc=exc)
    record.agent = "curl\r\n\u202e"
    record.changes = {"email": {"from": "a\n@x.io", "to": "b@x.io"}}

    line = formatter.format(record)

    assert "\n" not in line
    assert "\r" not in line
    assert not any(char in line for char in ("\x1b", "\u2066", "\u202e"))
    shown = line if isinstance(formatter, ConsoleFormatter) else json.dumps(json.loads(line))
    for escaped in ("bad", "forged line", "\\x1b[2J", "2066", "202e", "curl"):
        assert escaped in shown


def test_clean_text_is_logged_as_it_is() -> None:
    line = ConsoleFormatter().format(_record("GET %s 200", "/api/v1/todos/ü-ß"))
    assert line.endswith("GET /api/v1/todos/ü-ß 200")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_the_audit_trail_is_written_whatever_the_log_level(fmt: str) -> None:
    stream = io.StringIO()
    with restored_logging():
        configure_logging("ERROR", fmt)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logging.getLogger("app.access").info("not at ERROR")
        LoggingAuditTrail().record("login.failed", actor_id=None, email="a@b.io", reason="x")
    [line] = stream.getvalue().splitlines()
    if fmt == "json":
        assert json.loads(line)["action"] == "login.failed"
    else:
        assert "app.audit [-] login.failed action=login.failed actor_id=- " in line
        assert line.endswith("email=a@b.io reason=x")
