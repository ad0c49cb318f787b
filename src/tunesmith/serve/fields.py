"""OpenAI request fields -> generation parameters, and the log-probabilities in responses.

Every sampling field of ``/v1/chat/completions`` and ``/v1/completions`` is either implemented
(temperature, top_p, max_tokens, n, seed, stop, frequency_penalty, presence_penalty, logit_bias,
logprobs/top_logprobs, ``response_format: json_object``, completions' ``echo``) or refused with
a 400 that names the field (``response_format: json_schema``, ``best_of`` other than ``n``,
``suffix``, ``store: true``); ``user`` and ``metadata`` label a request and change nothing.
Tools (``tools``/``tool_choice``) are handled with the messages, not here.
"""

from __future__ import annotations

import dataclasses

from ..infer.engine import GenParams
from .errors import APIError

MAX_TOP_LOGPROBS = 20  # OpenAI's chat limit
MAX_COMPLETION_LOGPROBS = 5  # the legacy completions limit


def _refuse(field: str, message: str) -> APIError:
    return APIError(400, message, param=field, code="unsupported_parameter")


def gen_params(req, kind: str, defaults: GenParams, budget: int) -> GenParams:
    """The GenParams of a request (``kind``: "chat" or "text"), or an APIError naming the field.

    Args:
        req: the parsed request.
        kind: "chat" (``/v1/chat/completions``) or "text" (``/v1/completions``).
        defaults: the server's defaults (from its config) for fields the request leaves out.
        budget: max_tokens, already checked against the context.
    """
    check_refused(req, kind)
    logprobs, top = _logprobs(req, kind)
    return GenParams(
        max_new_tokens=budget,
        temperature=defaults.temperature if req.temperature is None else req.temperature,
        top_p=defaults.top_p if req.top_p is None else req.top_p, top_k=defaults.top_k,
        repetition_penalty=defaults.repetition_penalty, seed=req.seed, stop=req.stops(),
        frequency_penalty=req.frequency_penalty or 0.0,
        presence_penalty=req.presence_penalty or 0.0,
        logit_bias=_logit_bias(req.logit_bias), logprobs=logprobs, top_logprobs=top,
        json_object=_json_object(req.response_format))


def check_refused(req, kind: str) -> None:
    """Fields whose requested behaviour this server does not have: a 400 naming the field."""
    if req.store:
        raise _refuse("store", "'store': stored completions are not supported by this server")
    if kind == "text" and req.suffix:
        raise _refuse("suffix", "'suffix' (insertion) is not supported by this server")
    if kind == "text" and req.best_of is not None and req.best_of != req.n:
        raise _refuse("best_of", "'best_of' other than n is not supported by this server")


def _logprobs(req, kind: str) -> tuple[bool, int]:
    """(report logprobs, alternatives per token) from chat's ``logprobs``/``top_logprobs`` or
    the legacy completions' integer ``logprobs``."""
    if kind == "text":
        if req.logprobs is None:
            return False, 0
        if not 0 <= req.logprobs <= MAX_COMPLETION_LOGPROBS:
            raise APIError(400, f"'logprobs' must be between 0 and {MAX_COMPLETION_LOGPROBS}",
                           param="logprobs", code="invalid_value")
        return True, req.logprobs
    top = req.top_logprobs
    if top is not None and not req.logprobs:
        raise APIError(400, "'top_logprobs' needs 'logprobs': true", param="top_logprobs",
                       code="invalid_value")
    return bool(req.logprobs), int(top or 0)


def _logit_bias(bias: dict | None) -> dict[int, float]:
    out = {}
    for key, value in (bias or {}).items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise APIError(400, f"'logit_bias': key {key!r} is not a token id", param="logit_bias",
                           code="invalid_value") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
            raise APIError(400, f"'logit_bias': the bias of token {token} must be a number in "
                                "[-100, 100]", param="logit_bias", code="invalid_value")
        out[token] = float(value)
    return out


def _json_object(fmt) -> bool:
    if fmt is None:
        return False
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return False
    if kind == "json_object":
        return True
    if kind == "json_schema":
        raise _refuse("response_format", "'response_format': json_schema is not supported by "
                                         "this server; use {\"type\": \"json_object\"}")
    raise APIError(400, "'response_format.type' must be 'text' or 'json_object'",
                   param="response_format", code="invalid_value")


def with_seed(params: GenParams, index: int) -> GenParams:
    """Choice ``index`` of a seeded request samples with seed + index: n distinct, reproducible."""
    if params.seed is None or index == 0:
        return params
    return dataclasses.replace(params, seed=(params.seed + index) % 2**64)


# -- log-probabilities in responses -----------------------------------------------------------
def chat_logprobs(entries: list[dict] | None) -> dict | None:
    """Chat's ``choices[].logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    if entries is None:
        return None
    return {"content": entries, "refusal": None}


def completion_logprobs(entries: list[dict] | None, offset: int = 0) -> dict | None:
    """The legacy completions' ``logprobs``: parallel lists, offsets into the returned text."""
    if entries is None:
        return None
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e["token"])
    return {"tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]}
                             for e in entries],
            "text_offset": offsets}
