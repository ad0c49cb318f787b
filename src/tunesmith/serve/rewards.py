"""Reward-model scores over HTTP: ``POST /v1/score/evaluation`` (LLaMA-Factory's route and shape).

Registered only when the served model carries a value head (``stage: rm`` runs save
``value_head.safetensors``). A request names the model and gives ``messages``: texts to score as
they are, or conversations (lists of ``{role, content}``) rendered with the chat template; the
response is ``{"id", "object": "score.evaluation", "model", "scores": [float, ...]}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from .errors import APIError

MAX_ITEMS = 64


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[str | list[dict[str, Any]]]
    max_length: int | None = None


def has_value_head(model) -> bool:
    from ..train.fast_loss import _base_model

    return hasattr(_base_model(model), "v_head")


def _texts(engine, req: ScoreRequest) -> list[str]:
    if not req.messages or len(req.messages) > MAX_ITEMS:
        raise APIError(400, f"messages: give 1 to {MAX_ITEMS} texts or conversations to score",
                       param="messages", code="invalid_value")
    texts = []
    for item in req.messages:
        if isinstance(item, str):
            texts.append(item)
            continue
        try:
            texts.append(engine.template.render(engine.tokenizer, item))
        except Exception as exc:  # a template error is the caller's input, one line
            raise APIError(400, f"messages: cannot render a conversation: {exc}",
                           param="messages", code="invalid_value") from None
    return texts


def score_texts(engine, texts: list[str], max_length: int | None = None) -> list[float]:
    """Rewards of whole texts (the value head at each text's last token)."""
    import torch

    from ..data.pair_collate import pack_sequences
    from ..train.reward_model import reward_scores

    limit = max_length or engine.context_length
    ids = [engine.tokenizer(t, add_special_tokens=False)["input_ids"][:limit] or
           [engine.tokenizer.eos_token_id] for t in texts]
    batch = pack_sequences([{"input_ids": x, "labels": [-100] * len(x)} for x in ids],
                           engine.tokenizer.pad_token_id or 0, pack=False)
    device = engine.model.device
    with torch.inference_mode():
        scores = reward_scores(engine.model, {k: v.to(device) for k, v in batch.items()})
    return [round(float(s), 6) for s in scores]


def add_reward_routes(app, state) -> None:
    """Add the score route when the model has a value head."""
    model = getattr(state.engine, "model", None)  # an HF engine's; other engines score nothing
    if model is None or not has_value_head(model):
        return
    from starlette.concurrency import run_in_threadpool

    from .protocol import new_id, parse

    @app.post("/v1/score/evaluation")
    async def score(request: Request):
        from .app import _check_model, _json_body

        req = parse(ScoreRequest, await _json_body(request))
        _check_model(state, req.model)
        texts = _texts(state.engine, req)
        scores = await run_in_threadpool(score_texts, state.engine, texts, req.max_length)
        return {"id": new_id("scoreval"), "object": "score.evaluation", "model": state.model_id,
                "scores": scores}
