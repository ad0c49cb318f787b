"""A tiny evaluator for the subset of Go's text/template that tunesmith's Ollama templates use:
``{{- ... -}}`` whitespace trimming, ``range .Messages`` (optionally ``$i, $m :=``),
``if``/``else if``/``else``/``end`` with ``eq A B``, and the fields ``.Role``, ``.Content``,
``$.System``. Anything else raises, so a template outside the subset fails the test instead of
being rendered wrongly. Data follows Ollama: ``Messages`` (role, content) with the system
message first, ``System`` the system text (``template.Execute`` in Ollama).
"""

from __future__ import annotations

import re

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _lex(source: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(source):
        text = source[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2)))
        trim_next, pos = bool(m.group(3)), m.end()
    tail = source[pos:]
    parts.append(("text", tail.lstrip() if trim_next else tail))
    return parts


def _parse(tokens: list, i: int = 0, stop=("end",)):
    """Nodes until one of ``stop``; returns (nodes, index of the stopping action, its text)."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
            continue
        head = value.split()[0]
        if head in stop or value.startswith("else"):
            return nodes, i, value
        if head == "range":
            body, i, _ = _parse(tokens, i + 1)
            nodes.append(("range", value, body))
            i += 1
        elif head == "if":
            branches, i = _parse_if(tokens, value[3:], i + 1)
            nodes.append(("if", branches))
        else:
            nodes.append(("out", value))
            i += 1
    return nodes, i, None


def _parse_if(tokens, cond: str, i: int):
    branches = []
    while True:
        body, i, closer = _parse(tokens, i)
        branches.append((cond, body))
        if closer == "end":
            return branches, i + 1
        cond = closer[len("else if"):].strip() if closer.startswith("else if") else "true"
        i += 1


def _value(expr: str, dot, scope):
    expr = expr.strip()
    if expr.startswith('"'):
        return expr[1:-1]
    if expr.isdigit():
        return int(expr)
    if expr in ("$.System", ".System") and expr.startswith("$"):
        return scope["$"]["System"]
    if expr in (".Role", ".Content"):
        return dot[expr[1:].lower()]
    if expr in scope:
        return scope[expr]
    raise ValueError(f"unsupported expression: {expr}")


def _truth(cond: str, dot, scope) -> bool:
    if cond == "true":
        return True
    parts = re.findall(r'"[^"]*"|\S+', cond)
    if parts[0] == "eq" and len(parts) == 3:
        return _value(parts[1], dot, scope) == _value(parts[2], dot, scope)
    raise ValueError(f"unsupported condition: {cond}")


def _run(nodes, dot, scope, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "out":
            out.append(str(_value(node[1], dot, scope)))
        elif node[0] == "if":
            for cond, body in node[1]:
                if _truth(cond, dot, scope):
                    _run(body, dot, scope, out)
                    break
        else:
            _range(node, scope, out)


def _range(node, scope, out) -> None:
    header = node[1]
    m = re.fullmatch(r"range\s+(?:(\$\w+),\s*(\$\w+)\s*:=\s*)?\.Messages", header)
    if not m:
        raise ValueError(f"unsupported range: {header}")
    for index, message in enumerate(scope["$"]["Messages"]):
        inner = dict(scope)
        if m.group(1):
            inner[m.group(1)], inner[m.group(2)] = index, message
        _run(node[2], message, inner, out)


def render(source: str, messages: list[dict], system: str | None) -> str:
    """Render like Ollama's chat endpoint: the Modelfile SYSTEM goes first when the
    conversation has no system message."""
    if system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}] + list(messages)
    own = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    nodes, _, _ = _parse(_lex(source))
    out: list[str] = []
    _run(nodes, None, {"$": {"Messages": messages, "System": own}}, out)
    return "".join(out)
