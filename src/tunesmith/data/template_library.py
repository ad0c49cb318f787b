"""Named chat templates as data (Jinja), for tokenizers that ship none or for matching a peer.

Each entry: ``jinja`` (rendered by the tokenizer's own Jinja engine), optional ``default_system``
and thinking markers. ``{{ bos_token }}`` / ``{{ eos_token }}`` come from the tokenizer.
"""

from __future__ import annotations

_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# DeepSeek-LLM-7B-chat (seed 000): "User: ...\n\nAssistant: ...<eos>"; system text stands first.
_DEEPSEEK = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# DeepSeek-R1 style: the response carries <think>...</think> before the answer.
_DEEPSEEK_R1 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}"
)

_MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}"
    "{{ '[INST] ' + messages[0]['content'] + '\n\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

# Gemma has no system role: the system text opens the first user turn.
_GEMMA = (
    "{{ bos_token }}{% set sys = messages[0]['content'] + '\n\n' if messages and messages[0]['role'] == 'system' else '' %}"
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{% set prefix = sys if loop.index0 == (1 if sys else 0) else '' %}"
    "{{ '<start_of_turn>' + role + '\n' + prefix + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

NAMED_TEMPLATES: dict[str, dict] = {
    "chatml": {"jinja": _CHATML},
    "qwen": {"jinja": _CHATML, "default_system": "You are a helpful assistant."},
    "qwen3_nothink": {"jinja": _CHATML},  # LLaMA-Factory's name for Qwen3 without thinking
    "smollm2": {"jinja": _CHATML,
                "default_system": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
    "llama3": {"jinja": _LLAMA3},
    "deepseek": {"jinja": _DEEPSEEK},
    "deepseek-r1": {"jinja": _DEEPSEEK_R1},
    "mistral": {"jinja": _MISTRAL},
    "gemma": {"jinja": _GEMMA},
}
