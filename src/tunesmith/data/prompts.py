"""Data kind ``prompts`` (online RL): prompts to generate from, each with its reference answer.

Any chat or alpaca dataset works: a row's messages up to its last assistant turn are the prompt
(rendered with the template's generation prompt), and that assistant turn is the reference
answer handed to the reward functions (``exact_answer``, a user's ``module:function``). A
reference written as ``<think>...</think>answer`` (the ``reasoning`` format) keeps only the
answer. Prompts longer than ``cutoff_len`` tokens are dropped and counted: cutting one would cut
the assistant header that generation starts from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .conversation import Conversation, RowError
from .report import DataReport
from .templates import Template


@dataclass
class PromptExample:
    """One prompt: its token ids (ending with the assistant header), messages and answer."""

    input_ids: list[int]
    messages: list[dict]
    answer: str | None = None
    row: int = 0
    truncated: bool = False
    labels: list[int] = field(default_factory=list)  # none: completions are generated


def reference_answer(content: str, think_close: str = "</think>") -> str:
    """The answer part of a reference turn (the text after the thinking block, if any)."""
    return content.split(think_close, 1)[1].strip() if think_close in content else content.strip()


def prompt_example(conv: Conversation, tokenizer, template: Template,
                   cutoff_len: int) -> PromptExample:
    """The prompt and reference answer of one conversation.

    Raises:
        RowError: the prompt alone is longer than ``cutoff_len``.
    """
    last = conv.assistant_indices[-1]
    messages = conv.messages[:last]
    ids = tokenizer(template.generation_prompt(tokenizer, messages),
                    add_special_tokens=False)["input_ids"]
    if len(ids) > cutoff_len:
        raise RowError("prompt_too_long", f"prompt has {len(ids)} tokens, over cutoff_len="
                       f"{cutoff_len} (a cut prompt would lose the assistant header)")
    answer = reference_answer(conv.messages[last]["content"], template.think_close)
    return PromptExample(ids, messages, answer)


def encode_prompts(conversations, tokenizer, template: Template | None, cutoff_len: int,
                   report: DataReport) -> list[PromptExample]:
    """Every conversation as a PromptExample; bad rows are dropped and counted in ``report``."""
    if template is None:
        raise ValueError("the prompts data kind needs a chat template")
    examples = []
    for conv in conversations:
        try:
            ex = prompt_example(conv, tokenizer, template, cutoff_len)
        except RowError as err:
            report.drop(err.reason, conv.origin, str(err))
            continue
        ex.row = report.kept
        report.kept += 1
        examples.append(ex)
    report.samples += len(examples)
    return examples
