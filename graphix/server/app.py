"""The FastAPI application: database listing, schemas, questions, link graphs, playground.

Every error body is ``{"error": message}``, with these status codes:

- 400: the body is not a JSON object, or a database id could be a path;
- 404: unknown database or route;
- 413: the body is over the size limit;
- 422: a field fails validation (missing, wrong type, beams out of range, unknown
  dialect, empty question, unknown field);
- 503: the model queue is full or the model is not running;
- 500: a database file that cannot be read, or a bug.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from graphix.errors import GraphixError, InputError
from graphix.execution import ReadOnlyDatabase
from graphix.schema import Schema
from graphix.server.batching import BatchingConfig, MicroBatcher, ServerBusyError, SQLGenerator
from graphix.server.catalog import DatabaseCatalog, DatabaseEntry, UnknownDatabaseError
from graphix.server.limits import BodySizeLimit
from graphix.server.messages import (
    AskRequest, AskResponse, DatabasesResponse, ErrorResponse, GraphRequest, HealthResponse,
    SchemaResponse, dialect_names,
)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class ServerConfig:
    """Limits of one server."""

    max_body_bytes: int = 16 * 1024
    """Largest request body accepted; larger ones get 413."""
    max_rows: int = 100
    """Maximum rows returned per question; the response's `truncated` is true when more exist."""
    timeout_s: float = 5.0
    """Time limit of one generated query, in seconds."""
    batching: BatchingConfig = field(default_factory=BatchingConfig)


def create_app(db_dir: str | Path, model_path: str | Path | None = None, *,
               config: ServerConfig = ServerConfig(),
               text2sql: SQLGenerator | None = None) -> FastAPI:
    """Build the application serving the databases in `db_dir`.

    The model loads here, before the server starts, so a missing or broken model fails
    at once with a CheckpointError. `model_path` None means the bundled model.
    `text2sql` replaces the model with any object that has ``ask_many``; tests use it to
    get SQL that runs without a trained model.
    """
    catalog = DatabaseCatalog(db_dir)
    if text2sql is None:
        from graphix.api import Text2SQL

        started = time.perf_counter()
        text2sql = Text2SQL.from_pretrained(model_path)
        logger.info("loaded the model from %s in %.1f s", text2sql.model_dir,
                    time.perf_counter() - started)
    model_name = str(getattr(text2sql, "model_dir", None) or type(text2sql).__name__)
    state = _ServerState(catalog, MicroBatcher(text2sql, config.batching), config, model_name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await state.batcher.start()
        logger.info("serving %d databases from %s with model %s", len(catalog.entries()),
                    catalog.root, model_name)
        try:
            yield
        finally:
            await state.batcher.stop()
            logger.info("server stopped")

    app = FastAPI(title="Graphix text-to-SQL", version=_version(), lifespan=lifespan,
                  description="Ask questions in English about the SQLite databases of one "
                              "folder and get SQL, its result and the question's link graph.",
                  responses={code: {"model": ErrorResponse}
                             for code in (400, 404, 413, 422, 500, 503)})
    app.state.graphix = state
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    _add_error_handlers(app, catalog.root)
    _add_routes(app, state)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class _ServerState:
    """State shared by the routes: the catalog, the batcher and caches of parsed schemas."""

    def __init__(self, catalog: DatabaseCatalog, batcher: MicroBatcher, config: ServerConfig,
                 model_name: str):
        self.catalog = catalog
        self.batcher = batcher
        self.config = config
        self.model_name = model_name
        self._schemas: dict[tuple, Schema] = {}
        self._linkers: dict[tuple, object] = {}
        self._lock = threading.Lock()
        # pyplot keeps global state, so one drawing at a time.
        self.drawing_lock = threading.Lock()

    def schema(self, entry: DatabaseEntry) -> Schema:
        key = _file_key(entry)
        with self._lock:
            schema = self._schemas.get(key)
        if schema is None:
            schema = Schema.from_sqlite(entry.path, db_id=entry.db_id)
            with self._lock:
                self._schemas[key] = schema
        return schema

    def linker(self, entry: DatabaseEntry):
        from graphix.linking import SchemaLinker
        from graphix.value_index import ValueIndex

        key = _file_key(entry)
        with self._lock:
            linker = self._linkers.get(key)
        if linker is None:
            schema = self.schema(entry)
            linker = SchemaLinker(schema, ValueIndex.load_or_build(entry.path, schema))
            with self._lock:
                self._linkers[key] = linker
        return linker


def _file_key(entry: DatabaseEntry) -> tuple:
    stat = entry.path.stat()
    return (str(entry.path), stat.st_mtime_ns, stat.st_size)


def _add_routes(app: FastAPI, state: _ServerState) -> None:
    catalog, config = state.catalog, state.config

    @app.get("/", include_in_schema=False)
    def playground() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    @app.get("/health", response_model=HealthResponse, summary="Whether the model is running")
    def health():
        if not state.batcher.running:
            return _error(503, "the model is not running")
        return HealthResponse(status="ok", model=state.model_name,
                              databases=len(catalog.entries()), pending=state.batcher.pending,
                              batches=state.batcher.batches_run)

    @app.get("/databases", response_model=DatabasesResponse, summary="List the databases")
    def databases():
        return {"databases": [{"db_id": e.db_id, "file": e.relative_path}
                              for e in catalog.refresh()]}

    @app.get("/databases/{db_id}/schema", response_model=SchemaResponse,
             summary="Tables, columns, primary keys and foreign keys of one database")
    def schema(db_id: str):
        return _schema_body(state.schema(catalog.resolve(db_id)))

    @app.get("/dialects", summary="SQL dialects that /ask can return")
    def dialects() -> dict[str, list[str]]:
        return {"dialects": dialect_names()}

    @app.post("/ask", response_model=AskResponse, summary="Translate a question into SQL and run it")
    async def ask(body: AskRequest):
        started = time.perf_counter()
        entry = catalog.resolve(body.db_id)
        generated = await state.batcher.submit(body.question, entry.path, body.beams)
        answer = await run_in_threadpool(_finish, body, entry, generated, config)
        answer["timings_ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    @app.post("/graph", summary="Draw the question's link graph over the schema",
              response_class=Response,
              responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}})
    def graph(body: GraphRequest):
        from graphix.drawing import draw_graph
        from graphix.graph import build_graph

        entry = catalog.resolve(body.db_id)
        linker = state.linker(entry)
        built = build_graph(linker.link(body.question), linker.schema)
        with tempfile.TemporaryDirectory(prefix="graphix-graph-") as folder:
            out = Path(folder) / f"graph.{body.format}"
            with state.drawing_lock:
                draw_graph(built, out, schema_edges=body.schema_edges, title=body.question)
            image = out.read_bytes()
        media_type = "image/svg+xml" if body.format == "svg" else "image/png"
        return Response(image, media_type=media_type)


def _finish(body: AskRequest, entry: DatabaseEntry, generated, config: ServerConfig) -> dict:
    """Run the generated SQL read-only and rewrite it for the requested dialect."""
    answer = {"db_id": entry.db_id, "question": body.question, "sql": generated.sql,
              "dialect": "sqlite", "columns": [], "rows": [], "truncated": False, "error": None,
              "beams": [{"sql": sql, "score": score} for sql, score in generated.beams],
              "timings_ms": dict(generated.timings_ms), "batch_size": generated.batch_size}
    started = time.perf_counter()
    if body.execute:
        try:
            with ReadOnlyDatabase(entry.path) as database:
                result = database.execute(generated.sql, timeout_s=config.timeout_s,
                                          max_rows=config.max_rows)
        except GraphixError as error:
            answer["error"] = str(error)
        else:
            answer["columns"] = list(result.columns)
            answer["rows"] = [[_json_cell(value) for value in row] for row in result.rows]
            answer["truncated"] = result.truncated
    answer["timings_ms"]["execute"] = round((time.perf_counter() - started) * 1000, 2)
    if body.dialect != "sqlite":
        started = time.perf_counter()
        _transpile(answer, body.dialect)
        answer["timings_ms"]["transpile"] = round((time.perf_counter() - started) * 1000, 2)
    return answer


def _transpile(answer: dict, dialect: str) -> None:
    """Rewrite the SQL of `answer` for `dialect`, or keep SQLite and set `error` on failure."""
    from graphix.api import transpile
    from graphix.errors import SQLParseError

    try:
        sql = transpile(answer["sql"], dialect)
    except SQLParseError as error:
        reason = f"cannot rewrite the SQL for {dialect}, so it is shown as SQLite: {error}"
        answer["error"] = f"{answer['error']}; {reason}" if answer["error"] else reason
        return
    answer["sql"], answer["dialect"] = sql, dialect
    for beam in answer["beams"]:
        try:
            beam["sql"] = transpile(beam["sql"], dialect)
        except SQLParseError:
            logger.debug("kept a beam in SQLite: it does not parse")


def _json_cell(value):
    """Return `value` in a form JSON can carry: BLOBs as hex, NaN and infinities as text."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _schema_body(schema: Schema) -> dict:
    tables = []
    for table in schema.tables:
        keys = set(table.primary_keys)
        tables.append({"name": table.name, "primary_keys": list(table.primary_keys),
                       "columns": [{"name": c.name, "type": c.type, "primary_key": c.name in keys}
                                   for c in table.columns]})
    foreign_keys = [{"table": k.table, "column": k.column, "ref_table": k.ref_table,
                     "ref_column": k.ref_column} for k in schema.foreign_keys]
    return {"db_id": schema.db_id, "tables": tables, "foreign_keys": foreign_keys}


def _add_error_handlers(app: FastAPI, db_root: Path) -> None:
    def public(error: Exception) -> str:
        # Clients learn database ids, not where the folder is on the server.
        return str(error).replace(str(db_root), "<db-dir>")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = f"not found: {request.method} {request.url.path}; see /docs for the API"
        return _error(error.status_code, message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        problems = error.errors()
        logger.info("rejected %s %s: %s", request.method, request.url.path, _describe(problems))
        kinds = {problem.get("type") for problem in problems}
        if "json_invalid" in kinds:
            reason = problems[0].get("ctx", {}).get("error", "")
            return _error(400, f"the request body is not valid JSON ({reason}); send a JSON "
                               "object with Content-Type: application/json")
        if any(tuple(problem.get("loc", ())) == ("body",) for problem in problems) or \
                kinds & {"model_attributes_type", "model_type", "dict_type"}:
            return _error(400, "the request body must be a JSON object with Content-Type: "
                               "application/json, such as {\"db_id\": ..., \"question\": ...}")
        return _error(422, _describe(problems))

    @app.exception_handler(UnknownDatabaseError)
    async def unknown_database(request: Request, error: UnknownDatabaseError):
        logger.info("rejected %s %s: %s", request.method, request.url.path, error)
        return _error(404, str(error))

    @app.exception_handler(ServerBusyError)
    async def busy(request: Request, error: ServerBusyError):
        logger.warning("rejected %s %s: %s", request.method, request.url.path, error)
        return _error(503, str(error), headers={"Retry-After": "1"})

    @app.exception_handler(GraphixError)
    async def graphix_error(request: Request, error: GraphixError):
        if isinstance(error, InputError):
            logger.info("rejected %s %s: %s", request.method, request.url.path, error)
            return _error(400, public(error))
        logger.error("%s %s failed: %s", request.method, request.url.path, error)
        return _error(500, public(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        logger.exception("%s %s failed", request.method, request.url.path)
        return _error(500, "internal server error; the server log has the details")


def _describe(problems: list[dict]) -> str:
    """Return validation problems as one line, e.g. "beams: Input should be ... 8"."""
    parts = []
    for problem in problems:
        location = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        message = problem.get("msg", "invalid")
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _version() -> str:
    from graphix import __version__

    return __version__
