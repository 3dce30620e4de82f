"""Who may scrape /metrics."""

import hmac
from dataclasses import dataclass

from app.presentation.errors import HTTPProblem


@dataclass(frozen=True)
class MetricsAccess:
    """Who may scrape: the holders of `token` when there is one, else everyone or no one."""

    token: str | None
    open_without_token: bool

    def check(self, authorization: str) -> None:
        if self.token is None:
            if not self.open_without_token:  # not served at all, as if there were no route
                raise HTTPProblem(404, "not_found", "No such route.")
            return
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise HTTPProblem(401, "not_authenticated", "Send the metrics token as a Bearer token.")
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise HTTPProblem(401, "invalid_token", "This is not the metrics token.")
