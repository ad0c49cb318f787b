"""Request schemas (pydantic, strict) and response builders for the OpenAI-compatible API.

Requests are parsed from raw bytes with ``model_validate_json`` in strict mode: ``"max_tokens":
"5"`` is an error, as with OpenAI. Unknown top-level fields are rejected (a typo such as
``max_token`` would otherwise be silently ignored). What each OpenAI field does here -- or the 400
that names it when this server cannot do what it asks -- is in ``serve/fields.py``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import APIError

class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Lenient(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list | None = None  # an assistant turn that called tools (serve/tools.py)
    tool_call_id: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)  # torch.manual_seed's range
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict | None = None
    user: str | None = None
    response_format: dict | None = None
    tools: list | None = None
    tool_choice: Any = None
    metadata: dict | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    service_tier: str | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if len(stops) > 4:
            raise APIError(400, "'stop' may hold at most 4 sequences", param="stop")
        return [s for s in stops if s]

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    system: str | None = None  # extension: a system prompt without editing `messages`
    max_completion_tokens: int | None = Field(None, ge=1)

    def conversation(self) -> list[dict]:
        """Messages as the template expects them (``developer`` is OpenAI's new ``system``)."""
        msgs = [{"role": "system" if m.role == "developer" else m.role, "content": m.text(),
                 **({"tool_calls": m.tool_calls} if m.tool_calls else {})}
                for m in self.messages]
        if self.system is not None and not (msgs and msgs[0]["role"] == "system"):
            msgs.insert(0, {"role": "system", "content": self.system})
        return msgs

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = None
    suffix: str | None = None

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise APIError(400, "'prompt' must be a string or a list of exactly one string",
                           param="prompt")
        return self.prompt[0]

    def requested_tokens(self) -> int | None:
        return self.max_tokens


def parse(model_cls: type[BaseModel], body: bytes):
    """Validate a JSON body; any problem -> APIError 400 naming the field."""
    if not body.strip():
        raise APIError(400, "The request body is empty; expected a JSON object", code="invalid_json")
    try:
        return model_cls.model_validate_json(body)
    except ValidationError as exc:
        return _raise_validation(exc)


def _raise_validation(exc: ValidationError):
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        raise APIError(400, f"The body is not valid JSON: {first['msg']}", code="invalid_json")
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        raise APIError(400, f"Unrecognized request argument supplied: {loc}", param=loc,
                       code="unknown_parameter")
    if first["type"] == "model_type" and not loc:
        raise APIError(400, "The body must be a JSON object", code="invalid_json")
    raise APIError(400, f"Invalid value for '{loc or 'body'}': {first['msg']}", param=loc or None,
                   code="invalid_value")


# -- responses ------------------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, choices: list[dict], use: dict) -> dict:
    """``choices``: ``{"index", "text", "finish_reason"[, "logprobs"]}`` each."""
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": c["index"], "logprobs": c.get("logprobs"),
                         "finish_reason": c["finish_reason"],
                         "message": {"role": "assistant", "content": c["text"]}}
                        for c in choices],
            "usage": use}


def completion_response(rid: str, model: str, choices: list[dict], use: dict) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": c["index"], "text": c["text"], "logprobs": c.get("logprobs"),
                         "finish_reason": c["finish_reason"]} for c in choices],
            "usage": use}


def chat_chunk(rid: str, model: str, index: int, delta: dict, finish: str | None,
               with_usage: bool, logprobs: dict | None = None) -> dict:
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": model, "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                                          "finish_reason": finish}]}
    if with_usage:
        chunk["usage"] = None
    return chunk


def completion_chunk(rid: str, model: str, index: int, text: str, finish: str | None,
                     with_usage: bool, logprobs: dict | None = None) -> dict:
    chunk = {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
             "choices": [{"index": index, "text": text, "logprobs": logprobs,
                          "finish_reason": finish}]}
    if with_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk(rid: str, model: str, obj: str, use: dict) -> dict:
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [],
            "usage": use}


def model_card(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "tunesmith"}
