"""Plan, validate and run the points of a sweep: one ordinary ``tunesmith train`` run per point.

Each run is its own subprocess (``python -m tunesmith.cli train <run yaml>``, no shell), so peak
memory is the run's own and one crash does not take the sweep down. A run whose directory holds
``all_results.json`` written from the same run config is finished and skipped on a rerun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from ..config import ALIASES, build_config
from ..config_parse import parse_overrides, read_yaml
from ..errors import ConfigError
from .grid import point_name, point_tags

CONFIG_DIR = "sweep_configs"  # the run YAMLs, outside the run dirs (which hold only the run)
LOG_DIR = "sweep_logs"
DONE_FILE = "all_results.json"
PREDICT_DIR = "predict"  # predict writes its own data_report.json: keep it apart
PREDICT_FILE = "predict_results.json"
# Unless the sweep itself sets logging_steps (command line or grid), every run logs each 5% of
# its steps: the config's interval was chosen for one long run and may exceed a short sweep
# run, leaving one point per curve (the last step is always logged too).
LOG_FRACTION = 0.05


@dataclass
class RunPlan:
    """One grid point: its name, parameters, run directory and the full config it trains with."""

    name: str
    point: dict[str, str]
    run_dir: Path
    raw: dict
    config_path: Path
    log_path: Path


@dataclass
class RunResult:
    plan: RunPlan
    status: str  # done | skipped | failed
    metrics: dict = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    error: str = ""


def base_mapping(config: str | None, overrides: list[str]) -> dict:
    """The YAML file merged with the command-line overrides (aliases resolved), unvalidated."""
    raw = read_yaml(config) if config else {}
    extra = parse_overrides(list(overrides))
    merged = {ALIASES.get(k, k): v for k, v in raw.items()}
    merged.update({ALIASES.get(k, k): v for k, v in extra.items()})
    return merged


def plan_runs(config: str | None, overrides: list[str], points: list[dict[str, str]]
              ) -> tuple[Path, list[RunPlan]]:
    """A RunPlan per point, every one validated as a full config before anything runs.

    Raises:
        ConfigError: naming the grid point whose config is invalid.
    """
    base = base_mapping(config, overrides)
    if not sweep_sets_logging(overrides, points):
        base["logging_steps"] = LOG_FRACTION
    root = Path(str(build_config(dict(base), _source(config)).train.output_dir))
    plans, seen = [], set()
    for point in points:
        name = point_name(point)
        if name in seen:
            raise ConfigError(f"--grid: two points map to the run directory '{name}'")
        seen.add(name)
        raw = {**base, **point, "output_dir": str(root / name), "run_name": f"{root.name}/{name}"}
        try:
            build_config(dict(raw), f"grid point {name}")
        except ConfigError as err:
            message = str(err)
            raise ConfigError(message if message.startswith("grid point") else
                              f"grid point {name}: {message}") from None
        plans.append(RunPlan(name, point, root / name, raw, root / CONFIG_DIR / f"{name}.yaml",
                             root / LOG_DIR / f"{name}.log"))
    return root, plans


def sweep_sets_logging(overrides: list[str], points: list[dict[str, str]]) -> bool:
    """Whether the sweep's command line or grid chooses ``logging_steps`` itself."""
    keys = {ALIASES.get(k, k) for k in parse_overrides(list(overrides))}
    keys |= {ALIASES.get(k, k) for point in points for k in point}
    return "logging_steps" in keys


def _source(config: str | None) -> str:
    return str(config) if config else "command line"


def _dump(raw: dict) -> str:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def is_finished(plan: RunPlan) -> bool:
    """The run completed (``all_results.json``) with exactly this run config."""
    if not (plan.run_dir / DONE_FILE).is_file() or not plan.config_path.is_file():
        return False
    return plan.config_path.read_text(encoding="utf-8") == _dump(plan.raw)


def tracker_env(plan: RunPlan, group: str) -> dict[str, str]:
    """Environment for the trackers: the run tagged with its parameters, grouped by sweep."""
    tags = ",".join(t.replace(",", "|") for t in point_tags(plan.point))
    env = {"WANDB_TAGS": tags, "SWANLAB_TAGS": tags}
    for key in ("WANDB_RUN_GROUP", "SWANLAB_GROUP"):
        env[key] = os.environ.get(key, group)
    return env


def _train_command(plan: RunPlan) -> list[str]:
    """Write the run's YAML (and a copy that may start over a failed attempt); the train command."""
    plan.config_path.parent.mkdir(parents=True, exist_ok=True)
    raw = dict(plan.raw)
    if plan.run_dir.exists():  # an unfinished (or reconfigured) earlier attempt: start over
        raw["overwrite_output_dir"] = True
        (plan.run_dir / DONE_FILE).unlink(missing_ok=True)  # never mistake it for this run's
        (plan.run_dir / PREDICT_DIR / PREDICT_FILE).unlink(missing_ok=True)
    plan.config_path.write_text(_dump(plan.raw), encoding="utf-8")
    run_yaml = plan.config_path.with_suffix(".run.yaml")
    run_yaml.write_text(_dump(raw), encoding="utf-8")
    return [sys.executable, "-m", "tunesmith.cli", "train", str(run_yaml)]


def _predict_command(plan: RunPlan) -> list[str]:
    """``tunesmith predict`` with the run's config on its adapter (or full model)."""
    tuned = "adapter_name_or_path" if (plan.run_dir / "adapter_config.json").is_file() \
        else "model_name_or_path"
    return [sys.executable, "-m", "tunesmith.cli", "predict", str(plan.config_path),
            f"{tuned}={plan.run_dir}", f"output_dir={plan.run_dir / PREDICT_DIR}", "--no-progress"]


COMMANDS = {"train": _train_command, "predict": _predict_command}


def launch(plan: RunPlan, step: str, group: str, first: bool) -> subprocess.Popen:
    """Start one step (train or predict) of a run, its output into the run's log file."""
    cmd = COMMANDS[step](plan)
    plan.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = plan.log_path.open("w" if first else "a", encoding="utf-8")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **tracker_env(plan, group)})
    finally:
        log.close()  # the child holds its own descriptor


def read_result(plan: RunPlan, status: str, wall_s: float = 0.0) -> RunResult:
    """The run's metrics (+ predict metrics) and per-step log as written by the run."""
    from ..train.records import read_log

    metrics = {}
    for path, keep in ((plan.run_dir / DONE_FILE, lambda k: True),
                       (plan.run_dir / PREDICT_DIR / PREDICT_FILE, lambda k: k.startswith("predict_"))):
        if path.is_file():
            values = json.loads(path.read_text(encoding="utf-8"))
            metrics.update({k: v for k, v in values.items() if keep(k) and
                            isinstance(v, (int, float, str))})
    result = RunResult(plan, status, metrics, read_log(plan.run_dir), wall_s)
    if status == "failed":
        result.error = _last_error(plan.log_path)
    return result


def _last_error(log_path: Path) -> str:
    if not log_path.is_file():
        return "no log"
    lines = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    return (errors or lines or ["no output"])[-1][:200]


def steps_to_run(plan: RunPlan, predict: bool) -> list[str]:
    """What a run still needs: nothing when finished (and predicted, if asked)."""
    if not is_finished(plan):
        return ["train", "predict"] if predict else ["train"]
    done = (plan.run_dir / PREDICT_DIR / PREDICT_FILE).is_file()
    return ["predict"] if predict and not done else []


def _step_ok(plan: RunPlan, step: str, returncode: int) -> bool:
    marker = plan.run_dir / (DONE_FILE if step == "train" else f"{PREDICT_DIR}/{PREDICT_FILE}")
    return returncode == 0 and marker.is_file()


def run_plans(plans: list[RunPlan], group: str, parallel: int = 1, predict: bool = False,
              on_result: Callable[[RunResult], None] | None = None,
              poll_s: float = 0.5) -> list[RunResult]:
    """Run every unfinished plan, ``parallel`` at a time; finished ones are reported as skipped.

    Each run is a chain of steps (train, then predict with ``predict``), each a subprocess.

    Returns:
        One RunResult per plan, in plan order.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel: must be at least 1, got {parallel}")
    results: dict[str, RunResult] = {}
    pending = deque()
    for plan in plans:
        steps = steps_to_run(plan, predict)
        if steps:
            pending.append((plan, steps))
        else:
            results[plan.name] = read_result(plan, "skipped")
            _notify(on_result, results[plan.name])
    active: dict[str, list] = {}  # name -> [plan, remaining steps, process, step, start]
    try:
        while pending or active:
            while pending and len(active) < parallel:
                plan, steps = pending.popleft()
                active[plan.name] = [plan, steps[1:], launch(plan, steps[0], group, True),
                                     steps[0], time.time()]
            for name, (plan, rest, proc, step, start) in list(active.items()):
                if proc.poll() is None:
                    continue
                ok = _step_ok(plan, step, proc.returncode)
                if ok and rest:
                    active[name][1:4] = [rest[1:], launch(plan, rest[0], group, False), rest[0]]
                    continue
                del active[name]
                results[name] = read_result(plan, "done" if ok else "failed", time.time() - start)
                _notify(on_result, results[name])
            if active:
                time.sleep(poll_s)
    finally:
        _stop([entry[2] for entry in active.values()])
    return [results[p.name] for p in plans]


def _notify(callback, result: RunResult) -> None:
    if callback is not None:
        callback(result)


def _stop(processes: list) -> None:
    """Interrupted: end the runs still going (ours, by process), so nothing is left behind."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
