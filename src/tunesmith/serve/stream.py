"""Turning a request's job events into an SSE stream or one JSON body.

Events arrive on an asyncio queue as ``(choice_index, event)``; see ``infer.scheduler``. Whatever
happens -- the client leaving (the task is cancelled), an error event, a bug here -- the jobs are
cancelled in ``finally`` so their rows stop at the next token and the slots are freed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from . import fields as F
from . import protocol as P
from .errors import APIError, error_body

log = logging.getLogger("tunesmith.serve")
DISCONNECT_POLL_S = 0.25


def _sse(payload) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n"


def _generation_error(message: str) -> dict:
    return error_body(message, "server_error", None, "generation_failed")


def _chunk(rid, model, kind, index, text, finish, with_usage, first=False, logprobs=None):
    if kind == "text":
        return P.completion_chunk(rid, model, index, text, finish, with_usage, logprobs)
    delta = {"role": "assistant", "content": text} if first else ({"content": text} if finish is None else {})
    return P.chat_chunk(rid, model, index, delta, finish, with_usage, logprobs)


def _logprobs(kind: str, entries: list[dict] | None, offset: int = 0) -> dict | None:
    """Token log-probabilities in the endpoint's shape (completions: text offsets from
    ``offset``)."""
    if entries is None:
        return None
    return F.chat_logprobs(entries) if kind == "chat" else F.completion_logprobs(entries, offset)


async def sse_events(rid: str, model: str, kind: str, jobs, queue: asyncio.Queue,
                     include_usage: bool, echo: str | None = None, tools=None):
    """``data: {...}`` chunks, then ``data: [DONE]``; an error becomes an error event + [DONE].
    ``echo``: text sent first in every choice (completions' ``echo``). ``tools``: a
    ``serve.tools.ToolCallStream`` turning tool calls into ``tool_calls`` deltas."""
    try:
        for job in jobs:
            if kind == "chat":
                yield _sse(_chunk(rid, model, kind, job.index, "", None, include_usage, first=True))
            elif echo:
                yield _sse(_chunk(rid, model, kind, job.index, echo, None, include_usage))
        open_rows, offsets = len(jobs), {j.index: len(echo or "") for j in jobs}
        while open_rows:
            index, event = await queue.get()
            if event[0] == "text" and tools is not None:
                for delta in tools.text(index, event[1]):
                    yield _sse(P.chat_chunk(rid, model, index, delta, None, include_usage))
            elif event[0] == "text":
                lps = _logprobs(kind, event[2], offsets[index])
                yield _sse(_chunk(rid, model, kind, index, event[1], None, include_usage,
                                  logprobs=lps))
                offsets[index] += len(event[1])
            elif event[0] == "done":
                open_rows -= 1
                reason = event[1]
                if tools is not None:
                    deltas, reason = tools.done(index, reason)
                    for delta in deltas:
                        yield _sse(P.chat_chunk(rid, model, index, delta, None, include_usage))
                text = "" if kind == "text" else None
                yield _sse(_chunk(rid, model, kind, index, text, reason, include_usage))
            else:
                yield _sse(_generation_error(event[1]))
                break
        else:
            if include_usage:
                obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
                yield _sse(P.usage_chunk(rid, model, obj, _usage(jobs)))
        yield _sse("[DONE]")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the stream already started: report in-band
        log.error("error while streaming %s", rid, exc_info=exc)
        yield _sse(_generation_error("The server had an error while streaming the response."))
        yield _sse("[DONE]")
    finally:
        for job in jobs:
            job.cancel()


def _usage(jobs) -> dict:
    return P.usage(jobs[0].prompt_tokens, sum(j.completion_tokens for j in jobs))


async def collect(request, rid: str, model: str, kind: str, jobs, queue: asyncio.Queue,
                  echo: str | None = None) -> dict:
    """Wait for every choice; a client that disconnects meanwhile cancels its jobs."""
    texts = {j.index: [echo] if echo else [] for j in jobs}
    logprobs: dict[int, list | None] = {j.index: None for j in jobs}
    finish: dict[int, str] = {}
    next_check = time.monotonic() + DISCONNECT_POLL_S
    try:
        while len(finish) < len(jobs):
            # Events may arrive every few ms, so poll for a disconnect on a clock, not on idle.
            if time.monotonic() >= next_check:
                if await request.is_disconnected():
                    return {}
                next_check = time.monotonic() + DISCONNECT_POLL_S
            try:
                index, event = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                continue
            if event[0] == "text":
                texts[index].append(event[1])
                if event[2] is not None:
                    logprobs[index] = (logprobs[index] or []) + event[2]
            elif event[0] == "done":
                finish[index] = event[1]
            else:
                raise APIError(500, event[1], code="generation_failed", type="server_error")
    finally:
        for job in jobs:
            job.cancel()
    wants = any(j.params.logprobs for j in jobs)
    choices = [{"index": i, "text": "".join(texts[i]), "finish_reason": finish[i],
                "logprobs": _logprobs(kind, logprobs[i] or [], len(echo or "")) if wants else None}
               for i in sorted(texts)]
    build = P.chat_response if kind == "chat" else P.completion_response
    return build(rid, model, choices, _usage(jobs))

