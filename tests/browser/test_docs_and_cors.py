"""In a real browser: Swagger UI logs in with the password flow and lists the user's todo,
ReDoc renders, neither fetches anything from elsewhere, and CORS lets exactly the configured
origin call the API. Screenshots go to artifacts/."""

from typing import Any

import httpx
from playwright.async_api import Browser, Page

from tests.browser.conftest import ARTIFACTS, Origin
from tests.support import API, PASSWORD, Session

FETCH_TODOS = """async ([todos, token]) => {
  try {
    const response = await fetch(todos, {
      headers: {Authorization: "Bearer " + token},
    });
    return {
      ok: true,
      status: response.status,
      body: await response.json(),
      requestId: response.headers.get("X-Request-ID"),
    };
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}"""


async def open_page(browser: Browser) -> tuple[Page, list[str], list[str]]:
    """A page that records every URL it requests and every uncaught script error."""
    page = await browser.new_page(viewport={"width": 1280, "height": 1000})
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, requested, errors


def served_by(live_server: str, url: str) -> bool:
    """From the service, or made in the page from its data (ReDoc's worker is a blob: URL)."""
    return url.startswith((f"{live_server}/", f"blob:{live_server}/", "data:"))


async def test_swagger_ui_authorizes_with_the_password_flow_and_lists_the_users_todo(
    browser: Browser, live_server: str, account: Session
) -> None:
    async with httpx.AsyncClient(base_url=live_server, headers=account.headers) as http:
        created = await http.post(f"{API}/todos", json={"title": "Oat milk, seen in /docs"})
    assert created.status_code == 201, created.text
    page, requested, errors = await open_page(browser)
    try:
        await page.goto(f"{live_server}/docs")
        await page.locator(".swagger-ui .information-container").wait_for()

        await page.locator("button.authorize").first.click()
        oauth = page.locator(
            ".auth-container", has=page.locator("h4", has_text="OAuth2PasswordBearer")
        )
        await oauth.locator("#oauth_username").fill(account.email)
        await oauth.locator("#oauth_password").fill(PASSWORD)
        await oauth.get_by_role("button", name="Apply given OAuth2 credentials").click()
        await oauth.get_by_role("button", name="Remove authorization").wait_for()
        assert "Authorized" in await oauth.inner_text()
        await page.locator(".modal-ux button.close-modal").click()

        operation = page.locator("#operations-todos-list_todos")
        await operation.locator(".opblock-summary").click()
        await operation.locator("button.try-out__btn").click()
        await operation.locator("button.execute").click()
        response = operation.locator(".live-responses-table tbody tr.response")
        await response.wait_for()
        status = (await response.locator(".response-col_status").inner_text()).strip()
        body = await response.locator(".response-col_description pre.microlight").first.inner_text()
        await operation.screenshot(path=ARTIFACTS / "swagger-ui-list-todos.png")
    finally:
        await page.close()

    assert status == "200"
    assert "Oat milk, seen in /docs" in body
    assert created.json()["id"] in body
    assert errors == []
    assert requested
    assert all(served_by(live_server, url) for url in requested), requested


async def test_redoc_renders_from_the_service_alone(browser: Browser, live_server: str) -> None:
    page, requested, errors = await open_page(browser)
    try:
        await page.goto(f"{live_server}/redoc")
        await page.get_by_role("heading", name="Todo API").first.wait_for()
        await page.get_by_text("Create a todo").first.wait_for()
        await page.screenshot(path=ARTIFACTS / "redoc.png")
    finally:
        await page.close()
    assert errors == []
    assert all(served_by(live_server, url) for url in requested), requested


async def call_api_from(browser: Browser, origin: str, live_server: str, token: str) -> Any:
    page = await browser.new_page()
    try:
        await page.goto(f"{origin}/")
        return await page.evaluate(FETCH_TODOS, [f"{live_server}{API}/todos", token])
    finally:
        await page.close()


async def test_cors_lets_the_configured_origin_in_and_keeps_another_out(
    browser: Browser, live_server: str, other_origin: Origin, account: Session
) -> None:
    allowed = await call_api_from(browser, other_origin.allowed, live_server, account.access_token)
    assert allowed["ok"], allowed
    assert allowed["status"] == 200
    assert allowed["body"] == {"items": [], "next_cursor": None}
    assert allowed["requestId"], "X-Request-ID is an exposed header"

    refused = await call_api_from(browser, other_origin.refused, live_server, account.access_token)
    assert refused == {"ok": False, "error": "TypeError: Failed to fetch"}

    # What the browser was told: the preflight names the allowed origin, and only that one.
    async with httpx.AsyncClient(base_url=live_server) as http:
        for origin, expected in (
            (other_origin.allowed, other_origin.allowed),
            (other_origin.refused, None),
        ):
            answer = await http.options(
                f"{API}/todos",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            )
            assert answer.headers.get("Access-Control-Allow-Origin") == expected
