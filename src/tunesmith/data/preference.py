"""Preference rows: a prompt with a chosen and a rejected answer (``pairs``), or one answer with
a desirable/undesirable label (``unpaired``).

The shapes read (LLaMA-Factory's ``dataset_info.json`` entries with ``ranking: true`` or a
``kto_tag`` column, and TRL's preference formats):

- alpaca ranking: ``instruction``/``input`` (+ system, history) with ``chosen``/``rejected`` strings;
- sharegpt/openai ranking: a ``conversations`` list ending on the user turn, with ``chosen`` and
  ``rejected`` as one message each (``{"from": "gpt", "value": ...}``);
- TRL: ``prompt``/``chosen``/``rejected`` as strings or message lists, or only ``chosen`` and
  ``rejected`` conversations sharing their first turns (the implicit prompt);
- unpaired: any chat row plus a ``kto_tag`` (LLaMA-Factory) or ``label`` (TRL) boolean, e.g.
  TRL's ``{prompt, completion, label}``.

Each side becomes an ordinary Conversation whose ``prompt_len`` first messages are the shared
prompt, so tokenization labels only the answer (plus its end-of-turn), exactly as SFT does, and
the two sides are rendered with the same template. The prompt itself comes from the row's
format converter, so ``columns:`` and ``tags:`` apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conversation import Conversation, RowError, check_roles
from .formats import FORMATS, SHAREGPT_TAGS, OPENAI_TAGS, Format, register_format


@dataclass
class Pair:
    """Two conversations that share their first ``prompt_len`` messages."""

    chosen: Conversation
    rejected: Conversation
    origin: str = ""

    @property
    def sides(self) -> list[Conversation]:
        return [self.chosen, self.rejected]


@dataclass
class Unpaired:
    """One answer to a prompt, labelled desirable (True) or undesirable (False)."""

    conv: Conversation
    desirable: bool
    origin: str = ""

    @property
    def sides(self) -> list[Conversation]:
        return [self.conv]


def _col(opts: dict, key: str, default: str) -> str:
    return (opts.get("columns") or {}).get(key, default)


def _messages_key(row: dict, opts: dict) -> str | None:
    for key in (_col(opts, "messages", ""), "conversations", "messages"):
        if key and isinstance(row.get(key), list):
            return key
    return None


def detection_row(row, opts: dict):
    """The row as its chat format would show it with the chosen answer in place, for
    ``format: auto`` (alpaca: chosen as ``output``; sharegpt: chosen appended to the turns)."""
    if not isinstance(row, dict):
        return row
    c_key, r_key = _col(opts, "chosen", "chosen"), _col(opts, "rejected", "rejected")
    chosen = row.get(c_key)
    rest = {k: v for k, v in row.items() if k not in (c_key, r_key)}
    if isinstance(chosen, dict) and _messages_key(rest, opts):
        key = _messages_key(rest, opts)
        return {**rest, key: [*rest[key], chosen]}
    if isinstance(chosen, str) and _col(opts, "prompt", "instruction") in row \
            and "prompt" not in row:
        return {**rest, _col(opts, "response", "output"): chosen}
    return row


# --- TRL's preference format: prompt/chosen/rejected, strings or message lists ----------------

def _as_messages(value, key: str, role: str) -> list[dict]:
    if isinstance(value, str):
        if not value.strip() and role == "assistant":
            raise RowError("empty_response", f"key '{key}' is empty", key=key)
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return [{"role": m.get("role"), "content": m.get("content")} for m in value]
    raise RowError("bad_type", f"key '{key}': expected a string or a list of messages, got "
                   f"{type(value).__name__}", key=key)


def _common_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def trl_sides(row: dict, opts: dict, answer_keys: tuple[str, ...]) -> tuple[list[dict], list[list]]:
    """The prompt messages and each answer's messages of a TRL-shaped row.

    Without a ``prompt`` column the answers are whole conversations and the prompt is their
    common first turns (TRL's implicit prompt), cut back to end on a user turn."""
    p_key = _col(opts, "prompt", "prompt")
    for key in answer_keys:
        if row.get(key) is None:
            raise RowError("missing_key", f"missing key '{key}'", key=key)
    answers = [_as_messages(row[k], k, "assistant") for k in answer_keys]
    if row.get(p_key) is not None:
        prompt = _as_messages(row[p_key], p_key, "user")
    else:
        n = min(_common_prefix(answers[0], a) for a in answers) if len(answers) > 1 else \
            len(answers[0]) - 1
        while n > 0 and answers[0][n - 1]["role"] != "user":
            n -= 1
        prompt, answers = answers[0][:n], [a[n:] for a in answers]
    system = row.get(_col(opts, "system", "system"))
    if isinstance(system, str) and system.strip() and (not prompt or prompt[0]["role"] != "system"):
        prompt = [{"role": "system", "content": system}, *prompt]
    return prompt, answers


def _is_trl_pair(row: dict, cols: dict) -> bool:
    prompt = row.get(cols["prompt"])
    return prompt is None or isinstance(prompt, (str, list))


@register_format("preference", "prompt, chosen, rejected (TRL preference; strings or messages)",
                 {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected",
                  "system": "system"}, ("chosen", "rejected"), _is_trl_pair)
def convert_preference(row: dict, opts: dict) -> Conversation:
    """As a chat row (SFT on a preference file): the prompt and the chosen answer."""
    prompt, [chosen] = trl_sides(row, opts, (_col(opts, "chosen", "chosen"),))
    return _side(prompt, chosen)


def _side(prompt: list[dict], answer: list[dict]) -> Conversation:
    if not answer:
        raise RowError("no_response", "the answer has no messages after the prompt")
    messages = [*prompt, *answer]
    check_roles(messages)
    return Conversation(messages, prompt_len=len(prompt))


# --- one answer in place of the format's response --------------------------------------------

def _answer_message(value, key: str, tags: dict) -> dict:
    """A chosen/rejected value as one assistant message (a string, or a sharegpt/openai turn)."""
    if isinstance(value, str):
        return {"role": "assistant", "content": value}
    if isinstance(value, dict):
        content = value.get(tags["content_tag"], value.get("content", value.get("value")))
        return {"role": "assistant", "content": content}
    if value is None:
        raise RowError("missing_key", f"missing key '{key}'", key=key)
    raise RowError("bad_type", f"key '{key}': expected a string or a message, got "
                   f"{type(value).__name__}", key=key)


def _prompt_via_format(fmt: Format, row: dict, opts: dict) -> list[dict]:
    """The prompt messages, read by the format's own converter with a stand-in answer."""
    cols = opts.get("columns") or {}
    if "response" in fmt.keys:  # alpaca, prompt_completion, reasoning
        probe = {**row, fmt.col("response", cols): "-"}
    else:  # sharegpt/openai: a stand-in assistant turn appended
        tags = {**(SHAREGPT_TAGS if fmt.name == "sharegpt" else OPENAI_TAGS), **(opts.get("tags") or {})}
        key = fmt.col("messages", cols)
        turns = row.get(key)
        if not isinstance(turns, list):
            raise RowError("missing_key", f"missing key '{key}' (expected a list)", key=key)
        probe = {**row, key: [*turns, {tags["role_tag"]: tags["assistant_tag"],
                                       tags["content_tag"]: "-"}]}
    return fmt.convert(probe, opts).messages[:-1]


def _tags(fmt: Format, opts: dict) -> dict:
    base = SHAREGPT_TAGS if fmt.name == "sharegpt" else OPENAI_TAGS
    return {**base, **(opts.get("tags") or {})}


def convert_pair(fmt: Format, row, opts: dict) -> Pair:
    """A ranking row -> Pair (RowError naming the key when it does not fit)."""
    if not isinstance(row, dict):
        raise RowError("bad_type", f"expected a JSON object per row, got {type(row).__name__}")
    keys = (_col(opts, "chosen", "chosen"), _col(opts, "rejected", "rejected"))
    if fmt.name == "preference":
        prompt, answers = trl_sides(row, opts, keys)
    else:
        prompt = _prompt_via_format(fmt, {k: v for k, v in row.items() if k not in keys}, opts)
        answers = [[_answer_message(row.get(k), k, _tags(fmt, opts))] for k in keys]
    chosen, rejected = (_side(prompt, a) for a in answers)
    return Pair(chosen, rejected)


_LABEL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _label(row: dict, opts: dict) -> bool:
    key = _col(opts, "kto_tag", "kto_tag" if "kto_tag" in row else "label")
    value = row.get(key)
    if isinstance(value, str):
        value = _LABEL_WORDS.get(value.strip().lower(), value)
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise RowError("bad_label", f"key '{key}': expected true or false (desirable or not), "
                       f"got {value!r}", key=key)
    return bool(value)


def convert_unpaired(fmt: Format, row, opts: dict) -> Unpaired:
    """A row with a desirable/undesirable label -> Unpaired (the last assistant turn is the answer)."""
    if not isinstance(row, dict):
        raise RowError("bad_type", f"expected a JSON object per row, got {type(row).__name__}")
    completion = row.get(_col(opts, "response", "completion"))
    if isinstance(row.get(_col(opts, "prompt", "prompt")), list) or isinstance(completion, list):
        prompt, [answer] = trl_sides(row, opts, (_col(opts, "response", "completion"),))
        conv = _side(prompt, answer)
    else:
        conv = fmt.convert(row, opts)
        conv.prompt_len = conv.assistant_indices[-1]
    return Unpaired(conv, _label(row, opts))


RECORD_CONVERTERS = {"pairs": convert_pair, "unpaired": convert_unpaired}


def fits_kind(fmt: Format, kind: str) -> bool:
    """Whether rows of ``fmt`` can be read for the data kind (pairs need a prompt source)."""
    return kind != "pairs" or fmt.name == "preference" or "response" in fmt.keys or \
        "messages" in fmt.keys and fmt.name in ("sharegpt", "openai")


__all__ = ["Pair", "Unpaired", "convert_pair", "convert_unpaired", "detection_row",
           "RECORD_CONVERTERS", "FORMATS"]


# --- tokenization: each side as an SFT example, checked as a pair -----------------------------

def _completion(example) -> list[int]:
    from .tokenize import IGNORE

    first = next((i for i, lab in enumerate(example.labels) if lab != IGNORE), len(example.labels))
    return example.input_ids[first:]


def record_examples(record, results: list) -> list | RowError:
    """A record's examples with their flags, or the RowError that drops the whole record.

    Pairs: [chosen (flag 1), rejected (flag 0)]; both sides are cut the same way (the first
    ``cutoff_len`` tokens, the prompt being their common start), and identical answers drop the
    pair. Unpaired: [answer (flag 1 desirable, 0 not)]."""
    names = ("chosen", "rejected") if isinstance(record, Pair) else ("answer",)
    for name, result in zip(names, results):
        if isinstance(result, RowError):
            return RowError(result.reason, f"{name}: {result}", key=result.key)
    examples = [r[0] for r in results]
    if isinstance(record, Pair):
        if _completion(examples[0]) == _completion(examples[1]):
            return RowError("same_answers", "chosen and rejected answers are identical")
        examples[0].flag, examples[1].flag = 1, 0
    else:
        examples[0].flag = int(record.desirable)
    return examples


def encode_records(records: list, tokenizer, template, *, cutoff_len: int) -> list:
    """Encode Pair/Unpaired records with one tokenizer call (labels: each answer only)."""
    from .tokenize import encode_batch

    flat = [side for r in records for side in r.sides]
    encoded = iter(encode_batch(flat, tokenizer, template, train_on="all_assistant",
                                cutoff_len=cutoff_len))
    return [record_examples(r, [next(encoded) for _ in r.sides]) for r in records]
