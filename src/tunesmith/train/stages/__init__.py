"""The STAGES registry: what a training stage is made of, one file per stage.

A stage (``stage:`` in the config, LLaMA-Factory's names) declares the kind of data it trains
on, whether that data is rendered with a chat template, how a batch is collated, which Trainer
computes its loss, its own config rules and the extra metrics it logs and plots. The story that
runs every stage (tokenizer -> template -> data -> model -> method -> trainer -> train -> save)
is ``train/run.py``; a new stage is a new module here that calls :func:`register_stage`.

Data kinds: ``chat`` (conversations, labels on the assistant), ``text`` (plain causal LM),
``pairs`` (chosen/rejected), ``unpaired`` (a completion with a desirable/undesirable label),
``prompts`` (prompts to generate from, online RL).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ...registry import Registry

if TYPE_CHECKING:
    from ...config import RunConfig


DATA_KINDS = ("chat", "text", "pairs", "unpaired", "prompts")


def _no_check(cfg) -> None:
    return None


def _pad_or_pack(cfg, tokenizer):
    """Padding, or padding-free packing (``packing``: auto, true, false): SFT's and pt's batches."""
    from ...data.packing import pad_or_pack

    return pad_or_pack(cfg.data.packing, tokenizer.pad_token_id)


def _example_dataset(examples, cfg=None):
    from ..dataset import ExampleDataset

    return ExampleDataset(examples)


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: the ``stage`` value.
        summary: one line for ``--help`` and ``tunesmith keys``.
        data_kind: one of :data:`DATA_KINDS`.
        needs_template: rows are rendered with the chat template (False: plain text).
        check: ``(cfg) -> None``, the stage's own config rules (raise ConfigError).
        collator: ``(cfg, tokenizer) -> collate function`` for the Trainer.
        dataset: ``(examples, cfg) -> torch Dataset``.
        trainer: the Trainer class as ``"module:Class"`` under ``tunesmith.train`` (imported
            lazily by :meth:`trainer_class`: transformers is heavy).
        trainer_kwargs: ``(cfg, model, tokenizer) -> extra Trainer kwargs`` (e.g. a reference).
        plots: logged metrics plotted beside the loss in the run folder.
        params: a dataclass of the stage's own config keys (e.g. dpo's ``pref_beta``, grpo's
            ``num_generations``); values given in the config arrive typed through
            :func:`stage_params` (an optional ``check()`` method holds their range rules).
        methods_note: one line on the methods this stage cannot train with, or "".
        prepare_model: ``(cfg, model) -> model`` after the method is applied (e.g. rm's value
            head, which adapters must not target), or None.
        evaluate: the evaluator ``tunesmith eval`` runs under this stage, by name
            (``evaluate.EVALUATORS``: ``loss``, ``pairs``, ``rewards``).
        passes: a batch can run through the model in passes of fewer tokens
            (``micro_batch_tokens``) with the whole batch's gradients: rows of a loss summed
            over tokens (sft, pt: the trainer splits them) or whole pairs of a loss averaged
            over pairs (dpo, rm: the collator splits them). False: always one pass (KTO's
            batch-wide KL term, online stages).
    """

    name: str
    summary: str
    data_kind: str
    needs_template: bool = True
    check: Callable[[Any], None] = _no_check
    collator: Callable[..., Any] = _pad_or_pack
    dataset: Callable[..., Any] = _example_dataset
    trainer: str = "trainer:TunesmithTrainer"
    trainer_kwargs: Callable[..., dict] | None = None
    plots: tuple[str, ...] = field(default=())
    params: type | None = None
    methods_note: str = ""
    prepare_model: Callable[..., Any] | None = None
    evaluate: str = "loss"
    passes: bool = False

    def __post_init__(self):
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"stage '{self.name}': data_kind must be one of {DATA_KINDS}")

    def trainer_class(self) -> type:
        """The stage's Trainer class, imported now."""
        import importlib

        module, name = self.trainer.split(":")
        return getattr(importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.{module}"), name)


STAGES: Registry[Stage] = Registry("stage", package=__name__)


def register_stage(stage: Stage) -> Stage:
    """Add a stage to the registry (a duplicate name is an error)."""
    return STAGES.add(stage.name, stage)


def get_stage(name: str) -> Stage:
    """The stage ``name``; unknown -> ConfigError naming the known stages."""
    return STAGES.get(name)


def check_stage(cfg: RunConfig) -> Stage:
    """The configured stage, with its parameters typed and its own rules checked (before
    anything loads)."""
    stage = get_stage(cfg.method.stage)
    stage_params(cfg, stage)
    stage.check(cfg)
    return stage


def stage_param_keys() -> dict[str, list[str]]:
    """Every stage-parameter key, with the stages that accept it (for the config parser)."""
    keys: dict[str, list[str]] = {}
    for stage in STAGES.values():
        for f in dataclasses.fields(stage.params or _NoParams):
            keys.setdefault(f.name, []).append(stage.name)
    return keys


@dataclass
class _NoParams:
    pass


def stage_params(cfg: RunConfig, stage: Stage | None = None):
    """The configured stage's parameter dataclass, built from ``cfg.method.stage_params``
    (type-checked, its ``check()`` run; the typed values are written back).

    Raises:
        ConfigError: a key of another stage, a wrong type, or a value out of range.
    """
    from ...config_parse import build_typed

    stage = stage or get_stage(cfg.method.stage)

    def unknown(key: str) -> str:
        owners = ", ".join(stage_param_keys().get(key, [])) or "no stage"
        return (f"key '{key}' is a parameter of stage {owners}, not of stage '{stage.name}' "
                "(set stage: accordingly or remove the key)")

    params = build_typed(stage.params or _NoParams, cfg.method.stage_params, unknown)
    cfg.method.stage_params = {k: getattr(params, k) for k in cfg.method.stage_params}
    return params


def stage_template(cfg: RunConfig, tokenizer, stage: Stage | None = None):
    """The chat template the stage renders rows with, or None for plain text."""
    from ...data.templates import get_template

    stage = stage or get_stage(cfg.method.stage)
    if not stage.needs_template:
        return None
    return get_template(cfg.model.template, tokenizer, cfg.model.default_system)


def tokenizer_and_template(cfg: RunConfig, quiet: bool = False):
    """The run's tokenizer and its stage's template (data commands, estimate, web UI preview)."""
    from ...model.load import load_tokenizer, resolve_model_path

    stage = check_stage(cfg)
    tokenizer = load_tokenizer(cfg.model, resolve_model_path(cfg.model.model_name_or_path,
                                                             quiet=quiet, model_cfg=cfg.model))
    return tokenizer, stage_template(cfg, tokenizer, stage)
