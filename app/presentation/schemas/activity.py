from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.domain.activity import ActivityType


class FieldChange(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: JsonValue = Field(alias="from")
    to: JsonValue


class ActivityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    at: datetime
    actor_id: UUID | None = Field(description="Who made the change (their account may be gone).")
    type: ActivityType
    project_id: UUID = Field(description="The project the change happened in.")
    todo_id: UUID | None
    member_id: UUID | None = Field(
        description="`member.*`: whose membership changed; null otherwise."
    )
    changes: dict[str, FieldChange] = Field(
        description="Each changed field's value before and after (a move is `project_id`); "
        "`{}` where nothing was edited (created, deleted, restored, purged, removed)."
    )
