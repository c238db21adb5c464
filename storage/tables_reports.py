"""Tables of board reports (issue 7): quotes a safeguarding lead approved ("you said").

Declared with the same conventions as `storage.tables`; created by migration 0009.

A row means "this answer's text, as it read when approved, may appear in the
campaign's report". The text itself is not copied: the row names the answer
and keeps the SHA-256 of the text the lead read, so an answer changed since
(or erased: ON DELETE CASCADE) is never shown under an old approval.
Withdrawing an approval deletes its row; the audit log keeps both acts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Table
from sqlmodel import Field, SQLModel

from storage.clock import utcnow


class ReportQuoteRow(SQLModel, table=True):
    __tablename__ = "report_quotes"
    __table_args__ = (Index("ix_report_quotes_campaign_id", "campaign_id"),)

    answer_id: int = Field(
        primary_key=True,
        foreign_key="answers.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    campaign_id: int = Field(foreign_key="campaigns.id")
    text_sha256: str = Field(sa_type=String(64))  # of the answer's text as approved
    approved_by: int = Field(foreign_key="staff_users.id")
    approved_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


report_quotes = _table(ReportQuoteRow)

TABLES: tuple[Table, ...] = (report_quotes,)
