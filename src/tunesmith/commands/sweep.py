"""``tunesmith sweep CONFIG --grid "learning_rate=1e-4,2e-4 lora_rank=8,64"``: run and compare a grid.

Every point is an ordinary run in ``<output_dir>/<key=value,...>``; finished runs are skipped on a
rerun; ``sweep_report.md``, ``sweep_results.csv`` and plots are written into ``<output_dir>``.
Other ``key=value`` arguments apply to every run.
"""

from __future__ import annotations

import shlex
import sys

HEADER = f"{'#':>5}  {'run':<40} {'status':<8} {'train_loss':>10} {'eval_loss':>9} " \
         f"{'peak_MiB':>9} {'tok/s':>7} {'time_s':>7}"


def add_arguments(parser) -> None:
    parser.add_argument("--grid", action="append", required=True, metavar="SPEC",
                        help='space-separated key=v1,v2 (use | between values that contain '
                             'commas: lora_target=q_proj,v_proj|all); may be repeated')
    parser.add_argument("--max-runs", type=int, default=None, metavar="N",
                        help="run at most the first N points")
    parser.add_argument("--samples", type=int, default=None, metavar="K",
                        help="random search: K distinct points drawn from the grid")
    parser.add_argument("--seed", dest="sample_seed", type=int, default=0, metavar="S",
                        help="seed of the --samples draw (the training seed is the config's seed=)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="run N trainings at once (default 1: one after another)")
    parser.add_argument("--predict", action="store_true",
                        help="after training, run `tunesmith predict` in each run (BLEU-4/ROUGE "
                             "on eval_dataset, the val_size split, or the dataset) and compare")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate every point and list the runs, without training")


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def progress_printer(total: int):
    """A callback printing one table row as each run finishes (or is found finished)."""
    from ..sweep.report import result_row

    count = {"n": 0}
    print(HEADER, flush=True)

    def show(result) -> None:
        count["n"] += 1
        row = result_row(result)
        wall = result.wall_s or row.get("train_runtime_s")
        print(f"{count['n']:>2}/{total:<2}  {row['run'][:40]:<40} {row['status']:<8} "
              f"{_fmt(row['train_loss'], '10.4f')} {_fmt(row['eval_loss'], '9.4f')} "
              f"{_fmt(row['peak_mem_mb'], '9.0f')} {_fmt(row['tokens_per_s'], '7.0f')} "
              f"{_fmt(wall, '7.0f')}", flush=True)
        if result.error:
            print(f"       {result.error}", flush=True)

    return show


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_stopping_on_sigterm(fn, *args, **kwargs):
    """Call ``fn`` with SIGTERM unwinding like Ctrl-C, so runs still going are ended, not orphaned."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args) -> int:
    from ..sweep.grid import grid_points, parse_grid
    from ..sweep.report import write_report
    from ..sweep.runner import LOG_FRACTION, plan_runs, run_plans, sweep_sets_logging

    grid = parse_grid(args.grid)
    points = grid_points(grid, args.samples, args.sample_seed, args.max_runs)
    root, plans = plan_runs(args.config, args.overrides, points)
    print(f"sweep: {len(plans)} runs of {grid.size} grid points over {', '.join(grid.keys)} "
          f"-> {root}/", flush=True)
    if not sweep_sets_logging(args.overrides, points):
        print(f"sweep: each run logs its loss every {LOG_FRACTION:.0%} of its steps and at its "
              "last step (logging_steps=N on the sweep command line chooses)", flush=True)
    if args.dry_run:
        for plan in plans:
            print(f"  {plan.name}", flush=True)
        return 0
    results = _run_stopping_on_sigterm(run_plans, plans, group=root.name, parallel=args.parallel,
                                       predict=args.predict, on_result=progress_printer(len(plans)))
    command = "tunesmith sweep " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    report = write_report(root, results, grid.keys, command)
    print(f"report: {report}  (table: {root / 'sweep_results.csv'})", flush=True)
    return 1 if any(r.status == "failed" for r in results) else 0
