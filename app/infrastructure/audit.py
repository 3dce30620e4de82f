"""The audit trail as log records: one structured record per audited action, on its own logger
(`app.audit`), so it can be routed, kept and searched apart from the rest of the log."""

import logging
from uuid import UUID

from app.logs import AUDIT_LOGGER, request_context


class LoggingAuditTrail:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def record(
        self,
        action: str,
        *,
        actor_id: UUID | None,
        subject_id: UUID | None = None,
        **details: object,
    ) -> None:
        # Outside a request (the CLI, start-up) there is no request id and no client address.
        context = request_context.get()
        self._log.info(
            "%s",
            action,
            extra={
                "action": action,
                "actor_id": actor_id,
                "subject_id": subject_id,
                "client": context.client if context is not None else None,
                **details,
            },
        )
