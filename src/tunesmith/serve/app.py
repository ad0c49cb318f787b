"""The FastAPI application: routes, request -> scheduler jobs -> JSON or SSE responses.

``create_app(engine, settings)`` is all a caller needs; ``settings`` is a ``ServeConfig``.
Middleware order (outermost first): API key -> body size limit -> routing, so unauthenticated or
oversized requests are refused before any parsing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..faults import fail_generation_after
from ..infer.engine import GenParams
from ..infer.scheduler import Job, Overloaded, Scheduler, ShuttingDown
from . import fields as F
from . import protocol as P
from .auth import APIKeyMiddleware
from .errors import APIError, install_handlers, retry_after
from .limits import BodyLimitMiddleware
from .stream import collect, sse_events
from .tools import ToolCallStream, request_tools, shape_response, with_tools

RETRY_AFTER_S = 1


@dataclasses.dataclass
class ServeState:
    """What the routes share: the engine, its scheduler and the limits."""

    engine: Any
    scheduler: Scheduler
    settings: Any
    model_id: str
    defaults: GenParams
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))


def create_app(engine, settings, *, model_id: str | None = None,
               defaults: GenParams | None = None, scheduler: Scheduler | None = None) -> FastAPI:
    """The OpenAI-compatible app over ``engine``.

    Args:
        engine: any :class:`~tunesmith.infer.engine.Engine` (only its interface is used).
        settings: a ``ServeConfig`` (limits, api key, model name).
        model_id: the id clients must use (default: ``settings.model_name`` or ``"tunesmith"``).
        defaults: generation defaults for fields a request leaves out (temperature, top_p, ...).
        scheduler: an existing scheduler (tests); by default one is started here.
    """
    sched = scheduler or Scheduler(engine, settings.max_concurrency, settings.max_queue)
    state = ServeState(engine, sched, settings, model_id or settings.model_name or "tunesmith",
                       defaults or GenParams())

    @asynccontextmanager
    async def lifespan(app):
        yield
        sched.close()

    app = FastAPI(title="tunesmith", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.serve = state
    install_handlers(app)
    _routes(app, state)
    from .rewards import add_reward_routes

    add_reward_routes(app, state)  # reward models (stage: rm) only
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(APIKeyMiddleware, api_key=settings.api_key)
    return app


def _routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/health")
    async def health():
        stats = state.scheduler.stats()
        status = "draining" if stats["draining"] else "ok"
        return {"status": status, "model": state.model_id, **stats}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [P.model_card(state.model_id, state.created)]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str):
        _check_model(state, model)
        return P.model_card(state.model_id, state.created)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = P.parse(P.ChatCompletionRequest, await _json_body(request))
        tools = request_tools(req)  # rendered by the template; replies parsed to tool_calls
        messages = with_tools(req.conversation(), tools)
        text = " ".join(m["content"] for m in messages)
        return await _generate(request, state, req, "chat", messages, text, tools=bool(tools))

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = P.parse(P.CompletionRequest, await _json_body(request))
        text = req.prompt_text()
        return await _generate(request, state, req, "text", text, text)


async def _json_body(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise APIError(400, f"Content-Type must be application/json, got '{ctype or 'none'}'",
                       code="invalid_content_type")
    return await request.body()


def _check_model(state: ServeState, model: str) -> None:
    if model != state.model_id:
        raise APIError(404, f"The model '{model}' does not exist; this server serves "
                            f"'{state.model_id}'", param="model", code="model_not_found")


def _check_caps(state: ServeState, req) -> None:
    s = state.settings
    if req.n > s.max_n:
        raise APIError(400, f"n={req.n} is over this server's limit of {s.max_n}", param="n",
                       code="invalid_value")
    asked = req.requested_tokens()
    if asked is not None and asked > s.max_tokens_cap:
        raise APIError(400, f"max_tokens={asked} is over this server's limit of "
                            f"{s.max_tokens_cap}", param="max_tokens", code="invalid_value")


async def _encode(state: ServeState, kind: str, prompt) -> list[int]:
    from starlette.concurrency import run_in_threadpool

    engine = state.engine
    try:
        encode = engine.encode if kind == "chat" else engine.encode_text
        ids = await run_in_threadpool(encode, prompt)
    except Exception as exc:  # noqa: BLE001 - a template refusing the messages is the client's
        raise APIError(400, f"The messages cannot be rendered with the model's chat template: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                       param="messages" if kind == "chat" else "prompt") from None
    if not ids:
        raise APIError(400, "The prompt is empty", param="prompt")
    return list(ids)


def _budget(state: ServeState, req, prompt_tokens: int) -> int:
    """max_tokens for this request; prompt + max_tokens over the context -> 400 with both."""
    context = int(state.engine.context_length)
    asked = req.requested_tokens()
    default = min(state.defaults.max_new_tokens, state.settings.max_tokens_cap,
                  max(context - prompt_tokens, 1))
    wanted = asked if asked is not None else default
    if prompt_tokens + wanted > context:
        raise APIError(400, f"This model's maximum context length is {context} tokens. However, "
                            f"you requested {prompt_tokens + wanted} tokens ({prompt_tokens} in "
                            f"the prompt, {wanted} for the completion). Please reduce the length "
                            f"of the messages or max_tokens.", param="messages",
                       code="context_length_exceeded")
    return wanted


async def _generate(request: Request, state: ServeState, req, kind: str, prompt, text: str,
                    tools: bool = False):
    _check_model(state, req.model)
    _check_caps(state, req)
    echo = _echo(req, kind, prompt)
    ids = await _encode(state, kind, prompt)
    params = F.gen_params(req, kind, state.defaults, _budget(state, req, len(ids)))
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    jobs = [Job(ids, F.with_seed(params, i), _emitter(loop, queue, i), index=i,
                fail_after=fail_generation_after(text)) for i in range(req.n)]
    try:
        state.scheduler.submit(jobs)
    except Overloaded:
        raise retry_after(429, "The server is at capacity; retry shortly", "overloaded",
                          RETRY_AFTER_S) from None
    except ShuttingDown:
        raise retry_after(503, "The server is shutting down", "shutting_down",
                          RETRY_AFTER_S) from None
    rid = P.new_id("chatcmpl" if kind == "chat" else "cmpl")
    if req.stream:
        return StreamingResponse(sse_events(rid, state.model_id, kind, jobs, queue,
                                            req.include_usage(), echo,
                                            ToolCallStream() if tools else None),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    body = await collect(request, rid, state.model_id, kind, jobs, queue, echo)
    return JSONResponse(shape_response(body) if tools and body else body)


def _echo(req, kind: str, prompt) -> str | None:
    """Completions' ``echo``: the prompt text starts every choice (not with logprobs, which
    would then have to cover the prompt's tokens too)."""
    if kind != "text" or not req.echo:
        return None
    if req.logprobs is not None:
        raise APIError(400, "'echo' together with 'logprobs' is not supported by this server",
                       param="echo", code="unsupported_parameter")
    return prompt


def _emitter(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, index: int):
    """A thread-safe callback the worker uses to hand events to this request's queue."""

    def emit(event: tuple) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (index, event))
        except RuntimeError:  # the loop is closed (server stopped): nobody is listening
            pass

    return emit
