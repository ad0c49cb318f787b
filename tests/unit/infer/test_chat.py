"""tunesmith chat: interactive commands through stdin, history, --prompt, --compare."""

import io
import subprocess
import sys

from tunesmith.cli import main
from tunesmith.commands.chat import Session
from tunesmith.infer.engine import Completion, ContextLengthError, GenParams


class RecordingEngine:
    """Answers "ok N" and records the messages it was given."""

    def __init__(self):
        self.calls = []

    def stream(self, messages, params):
        self.calls.append([dict(m) for m in messages])
        if len(messages[-1]["content"]) > 50:
            raise ContextLengthError(600, params.max_new_tokens, 512)
        yield "ok "
        yield str(len(self.calls))

    def generate(self, messages, params):
        text = "".join(self.stream(messages, params))
        return Completion(text, 1, 1, "stop")


def test_session_keeps_history_and_handles_commands(capsys):
    engine = RecordingEngine()
    chat = Session(engine, GenParams(), system=None)
    chat.handle("Hi")
    chat.handle("And?")
    assert engine.calls[1] == [{"role": "user", "content": "Hi"},
                               {"role": "assistant", "content": "ok 1"},
                               {"role": "user", "content": "And?"}]
    chat.handle("/system Be brief.")
    chat.handle("Hello")
    assert engine.calls[2] == [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hello"}]
    chat.handle("/reset")
    chat.handle("Again")
    assert engine.calls[3][-1] == {"role": "user", "content": "Again"} and len(engine.calls[3]) == 2
    chat.handle("x" * 60)  # too long for the context: an error line, history unchanged
    out = capsys.readouterr().out
    assert "600 tokens" in out and "/reset" in out
    assert len(chat.turns) == 2


def test_interactive_chat_through_stdin(tiny_model_dir):
    script = "Hi\n/system Be brief.\nHello\n/reset\n/bogus\nAgain\n/exit\nnever read\n"
    result = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "chat", f"model_name_or_path={tiny_model_dir}",
         "max_new_tokens=4", "dtype=fp32"],
        input=script, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("commands: /reset")
    assert out.count("assistant> ") == 3
    assert "(system prompt set; history cleared)" in out and "(history cleared)" in out
    assert "(unknown command /bogus)" in out
    assert "Traceback" not in result.stderr


def test_prompt_and_compare(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    assert main(["chat", f"model_name_or_path={tiny_model_dir}", "--prompt", "Hi",
                 "max_new_tokens=3", "--no-stream"]) == 0
    assert capsys.readouterr().out.strip()
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                          LoraConfig(r=2, target_modules=["q_proj"]))
    peft.save_pretrained(tmp_path / "adapter")
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\n\nWho are you?\n"))
    assert main(["chat", f"model_name_or_path={tiny_model_dir}", "--compare", "max_new_tokens=3",
                 f"adapter_name_or_path={tmp_path / 'adapter'}"]) == 0
    out = capsys.readouterr().out
    assert out.count("  base : ") == 2 and out.count("  tuned: ") == 2 and "> Who are you?" in out
