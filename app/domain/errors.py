"""Domain errors. They carry no HTTP: presentation/errors.py maps each to a status and code."""


class DomainError(Exception):
    """Base of every error a use case may raise on purpose."""

    detail = "The request could not be completed."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail


class InvalidField(DomainError, ValueError):
    """A value breaks a domain rule. A ValueError too, so Pydantic validators can raise it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


class InvalidCursor(DomainError):
    detail = "The cursor is malformed, tampered with, or belongs to other filters."


class InvalidCredentials(DomainError):
    detail = "Incorrect email or password."


class InvalidToken(DomainError):
    detail = "The token is invalid, expired or revoked."


class AccountGone(InvalidToken):
    """The caller's own account was deleted while the request ran: answered as the token of a
    gone user would be on the next request (401 invalid_token), never as a 500."""

    detail = "The account this token belongs to no longer exists."


class TokenReused(DomainError):
    detail = "This refresh token was already used; every session of its login is now revoked."


class AccountDisabled(DomainError):
    detail = "This account is disabled."


class PermissionDenied(DomainError):
    detail = "You do not have permission to do this."


class TodoQuotaExceeded(DomainError):
    detail = "You have reached the maximum number of todos; delete some to add more."


class UserNotFound(DomainError):
    detail = "No user with this id."


class TodoNotFound(DomainError):
    detail = "No todo with this id."


class EmailTaken(DomainError):
    detail = "An account with this email already exists."


class LastAdmin(DomainError):
    detail = "The last active admin cannot be demoted, deactivated or deleted."


class PreconditionFailed(DomainError):
    detail = "The todo has changed since the version you last saw."


class IdempotencyKeyInFlight(DomainError):
    detail = "A request with this idempotency key is still being processed."


class IdempotencyKeyReused(DomainError):
    detail = "This idempotency key was already used with a different request."


class ProjectNotFound(DomainError):
    detail = "No project with this id."


class MemberNotFound(DomainError):
    detail = "This user is not a member of the project."


class InvitationNotFound(DomainError):
    """Unknown, expired, used and revoked invitations are one answer: nothing to tell apart."""

    detail = "No usable invitation with this token or id."


class InboxProtected(DomainError):
    detail = "The Inbox cannot be deleted or shared."


class OwnerRoleFixed(DomainError):
    detail = "A project's owner never changes; the owner's role cannot be changed."


class OwnerCannotLeave(DomainError):
    detail = "The owner cannot leave the project; delete it instead."


class AlreadyMember(DomainError):
    detail = "You are already a member of this project."


class InvalidSyncToken(DomainError):
    """Tampered with, malformed, or another user's: the same answer for each."""

    detail = "This sync token is not valid for you; start again with a full sync (no token)."


class SyncTokenExpired(DomainError):
    detail = "This sync token is too old; start again with a full sync (no token)."


class TooManyStreams(DomainError):
    detail = "You have as many event streams open as allowed; close one first."


class WebhookNotFound(DomainError):
    detail = "No webhook with this id."


class WebhookUrlNotAllowed(InvalidField):
    """A target the service will not call: not http(s), or an address it must not reach."""

    def __init__(self, detail: str) -> None:
        super().__init__("url", detail)
