"""``tunesmith models``: the bundled models and what is in the tunesmith, Hugging Face and
ModelScope caches (any of them can be given as ``model_name_or_path``)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--convert", action="store_true",
                        help="convert the bundled models now (otherwise done on first use)")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def run(args) -> int:
    from ..hub import hf_cache_dir, modelscope_cache_dir
    from ..hub_cache import cached_hf_models, cached_modelscope_models
    from ..model.bundled import BUNDLED, cached_dir, ensure_bundled, is_converted
    from ..paths import models_dir

    print(f"tunesmith cache: {models_dir()}")
    for name, model in BUNDLED.items():
        if args.convert:
            ensure_bundled(name)
        state = f"converted at {cached_dir(name)}" if is_converted(name) else "not converted yet"
        print(f"  {name:36} bundled     {model.description} ({model.hub_id}); {state}")
    for path in sorted(models_dir().iterdir()):
        if path.is_dir() and path.name not in BUNDLED and (path / "config.json").is_file():
            print(f"  {path.name:36} tunesmith   {path}")
    print(f"Hugging Face cache: {hf_cache_dir()}")
    for m in cached_hf_models():
        print(f"  {m.repo_id:36} huggingface {m.revision} {_size(m.size_bytes)}  {m.path}")
    print(f"ModelScope cache: {modelscope_cache_dir()}")
    for m in cached_modelscope_models():
        print(f"  {m.repo_id:36} modelscope  {_size(m.size_bytes)}  {m.path}")
    return 0
