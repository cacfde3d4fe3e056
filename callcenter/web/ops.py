"""``/metrics``, ``/healthz`` and ``/readyz`` of ``serve`` (policy: public, narrowed by the
ops settings; see ``callcenter.health`` for what each answers and who may ask).

``/health`` (older, both checks in one) stays for whoever already probes it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from callcenter import metrics
from callcenter.health import ReadinessProbe, database_check, ops_allowed, redis_check
from callcenter.settings import Settings
from callcenter.web.guard import client_address

router = APIRouter(tags=["operations"])


def _refused(request: Request) -> JSONResponse | None:
    settings: Settings = request.app.state.settings
    allowed = ops_allowed(
        settings, client=client_address(request) or None, authorization=request.headers.get("authorization")
    )
    return None if allowed else JSONResponse({"error": "forbidden"}, status_code=403)


def readiness_probe(request: Request) -> ReadinessProbe:
    """The app's probe, made on first use; the checks read ``app.state`` when they run, so
    they follow whatever the lifespan (or a test) put there."""
    state = request.app.state
    probe: ReadinessProbe | None = getattr(state, "readiness", None)
    if probe is None:
        probe = ReadinessProbe(
            {"database": database_check(lambda: state.reader), "redis": redis_check(lambda: state.redis)}
        )
        state.readiness = probe
    return probe


@router.get("/healthz", response_model=None)
async def healthz(request: Request) -> Response:
    """Liveness: the process answers (it checks nothing else)."""
    return _refused(request) or JSONResponse({"status": "alive"})


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> Response:
    """Readiness: PostgreSQL and Redis answer (503 and the failed checks otherwise)."""
    refused = _refused(request)
    if refused is not None:
        return refused
    ready = await readiness_probe(request)()
    return JSONResponse(ready.to_json(), status_code=200 if ready.ready else 503)


@router.get("/metrics", response_model=None)
async def metrics_text(request: Request) -> Response:
    """Prometheus metrics (text format)."""
    refused = _refused(request)
    if refused is not None:
        return refused
    text, content_type = await metrics.exposition(request.app.state.reader, readiness_probe(request))
    return Response(content=text, media_type=content_type)
