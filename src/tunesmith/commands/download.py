"""``tunesmith download ID``: fetch a hub model (or dataset) into the cache ahead of time.

For a GPU box behind a proxy: download where the hub is reachable, copy the cache over, then
train there with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("repo_id", metavar="ID", help="hub ID, e.g. Qwen/Qwen2.5-0.5B-Instruct")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    parser.add_argument("--hub", default="auto", choices=("auto", "huggingface", "modelscope"),
                        help="where the ID lives (auto: ModelScope when USE_MODELSCOPE_HUB=1)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also fetch pickle .bin weights (they can run code when loaded)")
    parser.add_argument("--dataset", action="store_true",
                        help="the ID is a dataset: load it with datasets.load_dataset into its cache")
    parser.add_argument("--subset", default=None, help="dataset subset (configuration) name")
    parser.add_argument("--split", default="train", help="dataset split (default train)")


def run(args) -> int:
    if args.dataset:
        from ..data.hub_data import download_dataset

        print(download_dataset(args.repo_id, subset=args.subset, split=args.split,
                               revision=args.revision, hub=args.hub))
        return 0
    from ..hub import HubUnreachable, ModelRequest, resolve_model
    from ..model.bundled import bundled_for_hub_id, ensure_bundled

    req = ModelRequest(args.repo_id, args.revision, None, args.hub, args.allow_pickle)
    try:
        print(resolve_model(req, refresh=True))
    except HubUnreachable:
        bundled = bundled_for_hub_id(args.repo_id)
        if bundled is None:
            raise
        print(f"{args.repo_id}: hub unreachable; the bundled copy is used ({bundled})",
              file=sys.stderr)
        print(ensure_bundled(bundled))
    return 0
