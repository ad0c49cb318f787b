"""``tunesmith models``: the bundled models and what is in the cache."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--convert", action="store_true",
                        help="convert the bundled models now (otherwise done on first use)")


def run(args) -> int:
    from ..model.bundled import BUNDLED, cached_dir, ensure_bundled, is_converted
    from ..paths import models_dir

    print(f"cache: {models_dir()}")
    for name, model in BUNDLED.items():
        if args.convert:
            ensure_bundled(name)
        state = f"converted at {cached_dir(name)}" if is_converted(name) else "not converted yet"
        print(f"  {name:16} bundled  {model.description}; {state}")
    for path in sorted(models_dir().iterdir()):
        if path.is_dir() and path.name not in BUNDLED and (path / "config.json").is_file():
            print(f"  {path.name:16} cached   {path}")
    return 0
