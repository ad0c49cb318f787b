"""Chat templates: the tokenizer's own (``auto``) or a named one (data in ``template_library``).

A template is a Jinja chat template rendered by the tokenizer (``apply_chat_template``), so our
rendering equals the model's. Assistant spans are found by rendering prefixes of the
conversation: the text after ``render(messages[:i], add_generation_prompt=True)`` up to the end of
``render(messages[:i+1])`` is turn i's response (trailing separators excluded). A template that
rewrites earlier turns (e.g. drops past ``<think>`` blocks) is not prefix-preserving; that is
detected and explained.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..errors import ConfigError, DataError
from ..registry import Registry
from .template_library import NAMED_TEMPLATES
from .tools import fallback_messages, for_template, native_tool_support, split_tools, uses_tools

# Named templates (``template:``); ``auto`` is the tokenizer's own. The specs are data in
# template_library; register_template adds one from code.
TEMPLATES: Registry[dict] = Registry("template", extra=("auto",))


def register_template(name: str, spec: dict) -> dict:
    """Add a named template spec (``jinja``, optional ``default_system`` and think markers)."""
    return TEMPLATES.add(name, spec)


for _name, _spec in NAMED_TEMPLATES.items():
    register_template(_name, _spec)


class TemplateError(DataError):
    """The template cannot delimit assistant turns."""


@dataclass
class Template:
    name: str
    jinja: str | None  # None: the tokenizer's own chat_template
    default_system: str | None = None
    think_open: str = "<think>"
    think_close: str = "</think>"

    def _messages(self, messages: list[dict]) -> list[dict]:
        if self.default_system and (not messages or messages[0]["role"] != "system"):
            return [{"role": "system", "content": self.default_system}] + list(messages)
        return list(messages)

    def render(self, tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
        """The conversation as text, exactly as the template writes it.

        Tools (``messages[0]["tools"]``), calls and results (``data/tools.py``) go through the
        template's own tool support, or through the documented ``<tool_call>`` fallback when the
        template has none."""
        messages, tools = split_tools(self._messages(messages))
        extra = {}
        if uses_tools(messages, tools):
            if native_tool_support(tokenizer, self.jinja):
                messages, extra = for_template(messages), ({"tools": tools} if tools else {})
            else:
                messages = fallback_messages(messages, tools)
        return tokenizer.apply_chat_template(
            messages, chat_template=self.jinja, tokenize=False,
            add_generation_prompt=add_generation_prompt, **extra)

    def renders_tools(self, tokenizer) -> bool:
        """Whether tools go through the template itself (else the ``<tool_call>`` fallback)."""
        return native_tool_support(tokenizer, self.jinja)

    def assistant_spans(self, tokenizer, messages: list[dict], turns: list[int]):
        """Character spans ``(start, end)`` of the given assistant turns in ``render(messages)``.

        Raises:
            TemplateError: the template is not prefix-preserving for these turns.
        """
        full = self.render(tokenizer, messages)
        spans = []
        for i in turns:
            before = self.render(tokenizer, messages[:i], add_generation_prompt=True)
            upto = self.render(tokenizer, messages[: i + 1])
            if not full.startswith(before) or not full.startswith(upto):
                raise TemplateError(_not_prefix_message(self.name, i))
            end = len(upto.rstrip(" \n"))
            spans.append((len(before), end))
        return full, spans

    def generation_prompt(self, tokenizer, messages: list[dict]) -> str:
        return self.render(tokenizer, messages, add_generation_prompt=True)

    def stop_strings(self, tokenizer) -> list[str]:
        """The text that ends an assistant turn (e.g. ``<|im_end|>``), found by rendering."""
        probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        full, [(start, end)] = self.assistant_spans(tokenizer, probe, [1])
        tail = full[start:end]
        idx = tail.find("y")
        suffix = tail[idx + 1:] if idx >= 0 else ""
        return [suffix] if suffix.strip() else []


def _not_prefix_message(name: str, turn: int) -> str:
    return (f"template '{name}' is not prefix-preserving at assistant turn {turn}: rendering the "
            "conversation up to that turn is not a prefix of the whole rendering (templates that "
            "drop earlier <think> blocks do this). Use train_on: split_turns or last_turn, or a "
            "template that renders history unchanged")


def get_template(name: str, tokenizer, default_system: str | None = None) -> Template:
    """Resolve ``auto`` (the tokenizer's own template) or a named template.

    Warns when a named template renders differently from the model's own template, the classic
    cause of a fine-tuned model that never stops.
    """
    if name == "auto":
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("this tokenizer has no chat template; set template: to one of "
                              f"{', '.join(TEMPLATES.names())}")
        return Template("auto", None, default_system)
    spec = TEMPLATES.get(name)
    template = Template(name, spec["jinja"], default_system or spec.get("default_system"),
                        spec.get("think_open", "<think>"), spec.get("think_close", "</think>"))
    _warn_if_mismatch(template, tokenizer)
    return template


_PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
          {"role": "user", "content": "Bye"}]


def template_mismatch(template: Template, tokenizer) -> str | None:
    """How ``template`` renders differently from the tokenizer's own chat template, or None.

    Both render the same probe (with the template's default system, if any), once as a finished
    exchange and once as a generation prompt.
    """
    own = getattr(tokenizer, "chat_template", None)
    if not own or template.jinja is None:
        return None
    for messages, gen in ((template._messages(_PROBE[:2]), False), (template._messages(_PROBE), True)):
        ours = template.render(tokenizer, messages, add_generation_prompt=gen)
        theirs = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        if ours != theirs:
            return f"ours {ours[:80]!r} vs the model's {theirs[:80]!r}"
    return None


def _warn_if_mismatch(template: Template, tokenizer) -> None:
    diff = template_mismatch(template, tokenizer)
    if diff:
        warnings.warn(f"template '{template.name}' differs from the model's own chat template "
                      f"({diff}); a fine-tuned model may then never stop generating. Use "
                      "template: auto unless you know the model was trained with this one",
                      stacklevel=3)
