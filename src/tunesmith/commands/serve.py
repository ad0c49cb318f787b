"""``tunesmith serve CONFIG [--host H] [--port P] [--api-key K] [--model-name NAME]``.

Serves the config's model (a base model, base + ``adapter_name_or_path``, or a merged export dir)
with an OpenAI-compatible API. Host, port, key, model name and the limits are ordinary config keys
(``tunesmith keys``), so ``--port 8001`` and ``port=8001`` work like every other override.
SIGTERM/SIGINT drain: new requests get 503, running ones finish within ``shutdown_grace_s``.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading

log = logging.getLogger("tunesmith.serve")
KEYS_HELP = ("server keys (set in the YAML or as --key value): host (default 127.0.0.1), port "
             "(8000), api_key, model_name, max_concurrency, max_queue, max_tokens_cap, max_n, "
             "max_body_bytes, shutdown_grace_s, serve_threads")


def add_arguments(parser) -> None:
    # No argparse options: --host/--port/... are config keys and arrive as overrides.
    parser.description = f"{parser.description}. {KEYS_HELP}"


def run(args) -> int:
    from ..infer.engine import GenParams
    from ..infer.load import load_engine
    from . import load_run_config

    cfg = load_run_config(args)
    s = cfg.serve
    _check_settings(s)
    _set_threads(s.serve_threads)
    engine = load_engine(cfg)
    _load_reward_head(engine, cfg)
    model_id = s.model_name or _default_model_id(cfg)
    return serve(engine, s, model_id, GenParams.from_config(cfg.infer))


def _load_reward_head(engine, cfg) -> None:
    """A reward model (an rm run's ``value_head.safetensors`` beside the adapter or model) gets
    its head, and the server its score route."""
    from ..train.reward_model import load_value_head

    if getattr(engine, "model", None) is None:  # vllm: no torch model to put a head on
        return
    for folder in (cfg.model.adapter_name_or_path, cfg.model.model_name_or_path):
        if folder and load_value_head(engine.model, folder):
            return


def _default_model_id(cfg) -> str:
    from pathlib import Path

    return Path(str(cfg.model.model_name_or_path).rstrip("/\\")).name or "tunesmith"


def _check_settings(s) -> None:
    from ..errors import ConfigError

    for key in ("max_concurrency", "max_tokens_cap", "max_n", "max_body_bytes"):
        if getattr(s, key) <= 0:
            raise ConfigError(f"key '{key}': must be a positive integer, got {getattr(s, key)}")
    if s.max_queue < 0:
        raise ConfigError(f"key 'max_queue': must be 0 or more, got {s.max_queue}")
    if s.serve_threads < 0:
        raise ConfigError(f"key 'serve_threads': must be 0 (auto) or more, got {s.serve_threads}")
    if not 0 < s.port < 65536:
        raise ConfigError(f"key 'port': must be in 1-65535, got {s.port}")


def _set_threads(requested: int) -> int:
    """Torch threads for generation: by default every core but one.

    The event loop (HTTP, SSE, tokenizing) needs a core of its own: when torch's OpenMP team takes
    every core, each decode step waits on a descheduled thread; on a 2-core box that made the
    tiny model ~7x slower per token (1.9 s vs 0.3 s for 32 tokens).
    """
    import os

    import torch

    threads = requested if requested > 0 else max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    return threads


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(engine, settings, model_id: str, defaults) -> int:
    """Run uvicorn in the foreground until SIGTERM/SIGINT; 0 after a clean drain."""
    import uvicorn

    from ..serve.app import create_app

    if not logging.root.handlers:  # a CLI run: show our INFO lines; leave an embedding app's setup
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    app = create_app(engine, settings, model_id=model_id, defaults=defaults)
    if not _is_loopback(settings.host) and not settings.api_key:
        log.warning("serving on %s without an API key: anyone who can reach this port can use "
                    "the model; set --api-key (api_key) to require one", settings.host)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
                            access_log=False)
    server = _graceful_server(config, app.state.serve.scheduler, settings.shutdown_grace_s)
    _print_banner(settings, model_id)
    server.run()
    return 0


def _print_banner(s, model_id: str) -> None:
    host = f"[{s.host}]" if ":" in s.host else s.host
    url = f"http://{host}:{s.port}/v1"
    auth = ' -H "Authorization: Bearer $TUNESMITH_API_KEY"' if s.api_key else ""
    print(f"serving '{model_id}' at {url}  (OpenAI-compatible; Ctrl+C to stop)", flush=True)
    print(f"try: curl {url}/chat/completions -H \"Content-Type: application/json\"{auth} "
          f"-d '{{\"model\": \"{model_id}\", \"messages\": [{{\"role\": \"user\", "
          f"\"content\": \"Hello!\"}}]}}'", flush=True)


def _graceful_server(config, scheduler, grace: float):
    """A uvicorn.Server whose first SIGTERM/SIGINT drains the scheduler before exiting.

    While draining, new generation requests get 503 + Retry-After from the scheduler; once the
    running and queued jobs finish (or ``grace`` seconds pass) uvicorn is told to exit (exit code
    0: the signal is not re-raised). A second signal exits at once.
    """
    import uvicorn

    class GracefulServer(uvicorn.Server):
        draining = False

        def handle_exit(self, sig, frame):
            if self.draining:
                self.force_exit = self.should_exit = True
                return
            self.draining = True
            print(f"shutting down: finishing requests in flight (up to {grace:g} s)",
                  file=sys.stderr, flush=True)
            threading.Thread(target=self._drain, daemon=True).start()

        def _drain(self):
            scheduler.drain(grace)
            self.should_exit = True

    return GracefulServer(config)
