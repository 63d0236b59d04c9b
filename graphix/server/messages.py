"""Request and response bodies of the HTTP API, as pydantic models (they make the OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from graphix.api import MAX_QUESTION_CHARS, Text2SQL

MAX_BEAMS = 8


def dialect_names() -> list[str]:
    """Return the SQL dialects that sqlglot can write, sorted."""
    from sqlglot.dialects.dialect import Dialect

    return sorted({name for name in Dialect.classes if name} | {"sqlite"})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db_id: str = Field(max_length=128, description="a database id from GET /databases")
    question: str = Field(max_length=MAX_QUESTION_CHARS, description="the question, in English")

    @field_validator("question")
    @classmethod
    def _usable_question(cls, question: str) -> str:
        # check_question raises InputError, a ValueError, which pydantic reports as a 422.
        return Text2SQL.check_question(question)


class AskRequest(_Request):
    """A question about one database."""

    dialect: str = Field("sqlite", description="dialect of the returned SQL (see GET /dialects); "
                                                "execution always uses the SQLite original")
    execute: StrictBool = Field(True, description="run the SQL and return its rows")
    beams: StrictInt = Field(1, ge=1, le=MAX_BEAMS, description="beam width; 1 is greedy")

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, dialect: str) -> str:
        names = dialect_names()
        if dialect not in names:
            raise ValueError(f"unknown SQL dialect {dialect!r}; choose one of {', '.join(names)}")
        return dialect


class GraphRequest(_Request):
    """A question whose link graph over one database should be drawn."""

    format: Literal["svg", "png"] = Field("svg", description="image format")
    schema_edges: StrictBool = Field(False, description="also draw edges between schema items")


class Beam(BaseModel):
    sql: str
    score: float = Field(description="log-probability of the SQL under the model")


class AskResponse(BaseModel):
    """The SQL for a question and, when executed, its result."""

    db_id: str
    question: str
    sql: str
    dialect: str
    beams: list[Beam]
    columns: list[str]
    rows: list[list]
    truncated: bool = Field(description="true when the row cap cut the result")
    error: str | None = Field(description="why execution or transpiling failed, if it did")
    timings_ms: dict[str, float]
    batch_size: int = Field(description="questions that went through the model together")


class ColumnInfo(BaseModel):
    name: str
    type: str
    primary_key: bool


class TableInfo(BaseModel):
    name: str
    columns: list[ColumnInfo]
    primary_keys: list[str]


class ForeignKeyInfo(BaseModel):
    table: str
    column: str
    ref_table: str
    ref_column: str


class SchemaResponse(BaseModel):
    db_id: str
    tables: list[TableInfo]
    foreign_keys: list[ForeignKeyInfo]


class DatabaseInfo(BaseModel):
    db_id: str
    file: str = Field(description="path of the file relative to the database folder")


class DatabasesResponse(BaseModel):
    databases: list[DatabaseInfo]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: str
    databases: int
    pending: int = Field(description="questions waiting for the model")
    batches: int = Field(description="batches run since the start")


class ErrorResponse(BaseModel):
    error: str
