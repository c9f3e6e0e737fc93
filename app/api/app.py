"""The HTTP API: the seed's endpoints, the servers, /metrics and /healthz, over FleetService.

Every answer is JSON; every error is `{"error": "..."}` with its status: 400 bad input,
401 no or a wrong token (with WWW-Authenticate), 404 no such server or path, 413 a body
over MAX_BODY, 503 Redis or the database away. Changes are audited as
`api:<token name>@<host>`. The OpenAPI document is /openapi.json, its pages /api/docs.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which name
# the local Caller dependency, at run time.

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from fleettop import __version__
from fleettop.alerting import AlertRecord
from fleettop.api.auth import Tokens
from fleettop.api.exposition import OPENMETRICS_TYPE, TEXT_TYPE, Exposition, wants_openmetrics
from fleettop.api.rows import Rows
from fleettop.config import ApiConfig
from fleettop.domain import FleetAggregate, QueueStats
from fleettop.errors import UnknownServer, UsageError
from fleettop.figures import parse_time
from fleettop.rollup import HOST_METRICS, history_document, is_metric, parse_duration
from fleettop.service import FleetService
from fleettop.views import ServerDetail, ServerView

log = logging.getLogger("fleettop.api")

MAX_BODY = 64 * 1024  # no endpoint takes a body yet: anything larger is refused unread
MAX_POINTS = 10_000  # history points in one answer
DEFAULT_RANGE = timedelta(days=1)  # as `fleettop history`
RECENT_S = 1.0
SEED = "/api/v1/servers/metrics"
T = TypeVar("T")  # the seed's paths, kept as its scripts call them


class ApiError(HTTPException):
    pass


class Error(BaseModel):
    error: str


class Queued(BaseModel):
    queued: int = Field(description="collections newly queued (a server already queued by hand is not queued twice)")
    servers: int = Field(description="servers asked for")


class Message(BaseModel):
    message: str


class Cleaned(BaseModel):
    completedCleaned: int  # noqa: N815 -- the seed's field names
    failedCleaned: int  # noqa: N815


class HistoryPoint(BaseModel):
    at: str  # ISO-8601, as `fleettop history --json`: the sample's time, or its bucket's start
    n: int  # samples in it
    min: float | None
    avg: float | None
    max: float | None


class HistorySeries(BaseModel):
    metric: str
    points: list[HistoryPoint]


class History(BaseModel):
    server: str
    tier: str = Field(description="raw, 5m or 1h: where the points were read")
    step: int = Field(description="seconds per point")
    since: str
    until: str
    series: list[HistorySeries]


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Error, "description": what}
    for status, what in (
        (400, "bad input"),
        (401, "no or a wrong bearer token"),
        (503, "Redis or the database is away"),
    )
}


class Recent(Generic[T]):
    """What `read` answers, shared by the requests within `max_age` seconds of it, and read once
    for the requests that come while it is being read. A failed read is nobody's answer."""

    def __init__(self, read: Callable[[], Awaitable[T]], max_age: float):
        self._read = read
        self._max_age = max_age
        self._value: tuple[float, T] | None = None
        self._pending: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._value[0] < self._max_age:
            return self._value[1]
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(self._pending)

    def forget(self) -> None:
        self._value = None

    async def _fetch(self) -> T:
        try:
            value = await self._read()
            self._value = (time.monotonic(), value)
            return value
        finally:
            self._pending = None


def build_app(service: FleetService, rows: Rows, settings: ApiConfig) -> FastAPI:
    tokens = Tokens(settings.named_tokens())
    bearer = HTTPBearer(auto_error=False, description="api.token, or one of api.tokens")
    exposition = Exposition()
    # Read once for every request within a second: 200 clients polling the queue counts (or
    # the aggregate, invalidated by each collection) cost one read a second, not 200.
    stats = Recent(lambda: service.stats(cached=True), RECENT_S)
    aggregated = Recent(service.aggregate, RECENT_S)
    host = socket.gethostname()
    app = FastAPI(
        title="fleettop",
        version=__version__,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        responses=ERRORS,
    )

    async def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        """The name of the token the request carries (its audit name); 401 without a valid one."""
        if not tokens:
            return "no-token"  # allowed on loopback only: refused at start on any other address
        name = tokens.holder(request.headers.get("authorization"))
        if name is None:
            wrong = "authorization" in request.headers
            challenge = 'Bearer realm="fleettop"' + (', error="invalid_token"' if wrong else "")
            raise ApiError(
                401,
                "wrong bearer token" if wrong else "a bearer token is required",
                headers={"WWW-Authenticate": challenge},
            )
        return name

    Caller = Annotated[str, Depends(caller)]

    def who(name: str) -> str:
        return f"api:{name}@{host}"

    # -- open ------------------------------------------------------------------------

    @app.get("/healthz", summary="Redis, the database and the workers (503 unless Redis and the database answer)")
    async def healthz() -> JSONResponse:
        health = await service.health()
        return JSONResponse(health.model_dump(), status_code=200 if health.redis and health.database else 503)

    # -- Prometheus ------------------------------------------------------------------

    async def metrics(request: Request) -> Response:
        openmetrics = wants_openmetrics(request.headers.get("accept"))
        current = await rows.current()
        body = exposition.render(current, await stats.get(), openmetrics=openmetrics)
        return Response(body, media_type=OPENMETRICS_TYPE if openmetrics else TEXT_TYPE)

    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        response_class=Response,
        summary="The fleet in the Prometheus text format",
        dependencies=[] if settings.metrics_public else [Depends(caller)],
    )

    # -- the seed's endpoints ----------------------------------------------------------

    @app.post(f"{SEED}/collect-all", summary="Collect every enabled server now")
    async def collect_all(name: Caller) -> Queued:
        servers = await service.enabled_servers()
        queued = await service.collect_servers(servers, everything=True, who=who(name))
        return Queued(queued=queued, servers=len(servers))

    @app.get(f"{SEED}/queue/stats", summary="Queue counts, over every worker on this Redis")
    async def queue_stats(_: Caller) -> QueueStats:
        return await stats.get()

    @app.post(f"{SEED}/queue/pause", summary="Pause collection, for every worker on this Redis")
    async def pause(name: Caller) -> Message:
        await service.pause(who=who(name))
        stats.forget()  # the next read says so
        return Message(message="collection paused")

    @app.post(f"{SEED}/queue/resume", summary="Resume collection")
    async def resume(name: Caller) -> Message:
        await service.resume(who=who(name))
        stats.forget()  # the next read says so
        return Message(message="collection resumed")

    @app.post(f"{SEED}/queue/clean", summary="Remove finished runs and job records past their limits")
    async def clean(name: Caller) -> Cleaned:
        cleaned = await service.clean(who=who(name))
        stats.forget()
        return Cleaned(completedCleaned=cleaned.completed, failedCleaned=cleaned.failed)

    @app.get(f"{SEED}/aggregate", summary="Fleet totals and averages (cached for cache.aggregated_ttl)")
    async def aggregate(_: Caller) -> FleetAggregate:
        return await aggregated.get()

    # -- servers -----------------------------------------------------------------------

    @app.get("/api/v1/servers", summary="Every server as the dashboard shows it", response_model=list[ServerView])
    async def servers(_: Caller) -> Response:
        return Response(rows.json(await rows.current()), media_type="application/json")

    @app.get("/api/v1/servers/{name}", summary="One server: its row, 1 h and 24 h history, recent runs")
    async def server(name: str, _: Caller) -> ServerDetail:
        return await service.server_detail(name)

    @app.post("/api/v1/servers/{name}/collect", summary="Collect one server now")
    async def collect(name: str, caller_name: Caller) -> Queued:
        found = await service.resolve([name])
        return Queued(queued=await service.collect_servers(found, everything=False, who=who(caller_name)), servers=1)

    @app.get(
        "/api/v1/alerts",
        summary="Open alerts, firing first, as `fleettop alerts --json` (all=true: with the recently resolved)",
    )
    async def alerts(_: Caller, all: bool = False) -> list[AlertRecord]:  # noqa: A002 -- the query parameter's name
        return await service.alerts(everything=all)

    @app.get("/api/v1/servers/{name}/metrics", summary="A server's history, as `fleettop history --json`")
    async def history(
        name: str,
        _: Caller,
        since: Annotated[
            str | None, Query(description="30m, 24h, 7d (that long ago) or ISO-8601; default 24 h ago")
        ] = None,
        until: Annotated[str | None, Query(description="as since; default now")] = None,
        step: Annotated[str | None, Query(description="a duration per point (5m, 1h); default: 200 points")] = None,
        metric: Annotated[
            list[str] | None, Query(description=f"{', '.join(HOST_METRICS)} or disk:MOUNT; default all but disks")
        ] = None,
    ) -> History:
        now = datetime.now(timezone.utc)
        end = parse_time(until, "until", now) or now
        start = parse_time(since, "since", now) or end - DEFAULT_RANGE
        if start >= end:
            raise UsageError("since must be before until")
        try:
            seconds = None if step is None else parse_duration(step)
        except ValueError as exc:
            raise UsageError(f"step: {exc}") from None
        if seconds is not None and (end - start).total_seconds() / seconds > MAX_POINTS:
            raise UsageError(f"more than {MAX_POINTS} points: give a larger step")
        metrics = metric or list(HOST_METRICS)
        unknown = [name for name in metrics if not is_metric(name)]
        if unknown:
            raise UsageError(f"metric {unknown[0]!r}: one of {', '.join(HOST_METRICS)}, or disk:MOUNT (disk:/var)")
        server, series = await service.history(name, metrics, start, end, seconds)
        return History.model_validate(history_document(server.name, series))

    # -- errors, as {"error": ...} -----------------------------------------------------

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc, ApiError) else _HTTP_WORDS.get(exc.status_code, str(exc.detail).lower())
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()]
        return JSONResponse({"error": "; ".join(problems)}, status_code=400)

    @app.exception_handler(UsageError)
    async def usage(request: Request, exc: UsageError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404 if isinstance(exc, UnknownServer) else 400)

    async def outage(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": service.describe_outage(exc)}, status_code=503)

    for kind in service.OUTAGES:  # Redis or the database away: a 503 that says which, no traceback
        app.add_exception_handler(kind, outage)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        # A bug: uvicorn logs its traceback (Starlette raises it on after this answer).
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the log"}, status_code=500)

    app.add_middleware(BodyLimit, limit=MAX_BODY)
    return app


_HTTP_WORDS = {404: "no such path", 405: "method not allowed"}

Scope = MutableMapping[str, Any]
Message_ = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message_]]
Send = Callable[[Message_], Awaitable[None]]


class BodyLimit:
    """Refuses, unread, a request body over `limit` bytes (413) or of no declared length (411):
    no endpoint takes a body larger than that, and the server (h11) holds a body to the length
    it declares."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length")
            refusal = None
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                refusal = JSONResponse({"error": f"request body over {self.limit} bytes"}, status_code=413)
            elif declared is None and b"transfer-encoding" in headers:
                refusal = JSONResponse({"error": "a request body must give its Content-Length"}, status_code=411)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
