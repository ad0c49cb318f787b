"""The one registry shape: duplicate names are bugs, unknown names are one-line ConfigErrors,
and a package's modules register themselves on first use (discovery)."""

import pytest

from tunesmith.errors import ConfigError
from tunesmith.registry import Registry


def test_register_get_and_duplicate():
    reg = Registry("widget", key="widget_kind")
    reg.register("alpha")(lambda: 1)
    assert reg.get("alpha")() == 1
    assert "alpha" in reg and reg.names() == ["alpha"]
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha", object())


def test_unknown_name_is_one_line_with_suggestion_and_known_names():
    reg = Registry("widget", key="widget_kind", extra=("auto",))
    reg.add("sigmoid", 1)
    with pytest.raises(ConfigError) as err:
        reg.get("sigmoidd")
    msg = str(err.value)
    assert "\n" not in msg
    assert "key 'widget_kind'" in msg and "did you mean 'sigmoid'" in msg
    assert "known: auto, sigmoid" in msg


def test_discovery_imports_every_module_of_the_package():
    from tunesmith.train.stages import STAGES

    names = STAGES.names()  # nobody imported the stage modules by name
    assert {"sft", "pt"} <= set(names)


def test_config_parsing_stays_light():
    """Parsing a config discovers every method and stage module: they keep torch, transformers
    and peft imports inside functions (a ``_*`` helper module is not discovered)."""
    import subprocess
    import sys

    code = ("import sys; from tunesmith.config import load_config; load_config(None, {}); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
