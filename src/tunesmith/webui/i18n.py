"""Interface text: one dict per language. Config keys (``learning_rate``...) stay as labels in
every language, since they are what users type in YAML; everything else is translated."""

from __future__ import annotations

EN = {
    "title": "tunesmith web UI",
    "subtitle": "Everything here is a config you can save as YAML and rerun with the CLI.",
    "lang": "Language / 语言",
    "tab_train": "Train", "tab_chat": "Chat", "tab_eval": "Evaluate", "tab_export": "Export",
    "tab_runs": "Runs",
    "run_name": "Run name (a folder in the output root)",
    "model": "Model (bundled name, cached model or a path)",
    "template": "template",
    "trust_remote_code": "Trust the model's own code (trust_remote_code)",
    "dataset": "Dataset (registry name or file in the data root)",
    "preview": "Preview examples", "preview_title": "Examples as the model sees them (labels in green)",
    "method": "Method", "method_params": "Method parameters", "hyper": "Hyperparameters",
    "stage": "Stage (sft, pt, dpo, kto, rm, ...)", "stage_params": "Stage parameters",
    "extra": "More keys (YAML, any key from `tunesmith keys`)",
    "show_config": "Show YAML and command", "start": "Start", "stop": "Stop (save checkpoint)",
    "resume": "Resume", "yaml": "Equivalent YAML", "cli": "Equivalent command",
    "status": "Status", "loss": "Training loss", "log": "Training log",
    "idle": "No training started.", "running": "Training", "finished": "Finished",
    "failed": "Failed (exit code {rc}); see the log", "stopped": "Stopped; checkpoint saved",
    "started": "Started: {cmd}", "progress": "step {step}/{total} · loss {loss} · "
    "{tps} tokens/s · peak memory {mem} MiB · elapsed {elapsed}s · ETA {eta}s",
    "already": "A training run is already in progress.", "nothing_to_stop": "Nothing is running.",
    "nothing_to_resume": "Choose a run name that has checkpoints to resume.",
    "mode": "Chat with", "mode_base": "Base model", "mode_adapter": "Base + adapter",
    "mode_compare": "Both, side by side", "adapter": "Adapter (a run in the output root)",
    "refresh": "Refresh", "system": "System prompt", "message": "Message", "send": "Send",
    "clear": "Clear", "base_chat": "Base model", "tuned_chat": "Base + adapter",
    "sampling": "Sampling", "need_adapter": "Choose an adapter for this mode.",
    "eval_run": "Evaluate", "metrics": "Metrics", "predictions": "Predictions vs references",
    "eval_help": "Runs `tunesmith predict` on the dataset and scores BLEU-4 / ROUGE.",
    "predict_missing": "`tunesmith predict` is not available in this version.",
    "export_run": "Merge and export", "export_name": "Export folder (in the output root)",
    "export_check": "Merge check (export_check.json)",
    "export_help": "Runs `tunesmith export`: merges the adapter and saves safetensors shards or one GGUF file.",
    "export_missing": "`tunesmith export` is not available in this version.",
    "runs_table": "Runs in the output root", "compare": "Compare loss curves of",
    "run_detail": "Run", "config": "Config", "final_metrics": "Final metrics",
    "loss_plot": "Loss plot", "error": "Error: {msg}", "done": "Done", "working": "Working...",
    "job_log": "Log",
}

ZH = {
    "title": "tunesmith 网页界面",
    "subtitle": "这里的每个操作都对应一个可保存为 YAML 的配置，可用命令行重新运行。",
    "lang": "Language / 语言",
    "tab_train": "训练", "tab_chat": "对话", "tab_eval": "评估", "tab_export": "导出",
    "tab_runs": "运行记录",
    "run_name": "运行名称（输出目录下的文件夹）",
    "model": "模型（内置名称、缓存模型或路径）",
    "template": "template",
    "trust_remote_code": "信任模型自带代码（trust_remote_code）",
    "dataset": "数据集（注册名称或数据目录中的文件）",
    "preview": "预览样本", "preview_title": "模型实际看到的样本（绿色为标签）",
    "method": "微调方法", "method_params": "方法参数", "hyper": "超参数",
    "stage": "训练阶段（sft、pt、dpo、kto、rm 等）", "stage_params": "阶段参数",
    "extra": "更多参数（YAML，任意 `tunesmith keys` 中的键）",
    "show_config": "显示 YAML 和命令", "start": "开始", "stop": "停止（保存检查点）",
    "resume": "继续训练", "yaml": "等价的 YAML", "cli": "等价的命令",
    "status": "状态", "loss": "训练损失", "log": "训练日志",
    "idle": "尚未开始训练。", "running": "训练中", "finished": "已完成",
    "failed": "失败（退出码 {rc}），请查看日志", "stopped": "已停止，检查点已保存",
    "started": "已启动：{cmd}", "progress": "步数 {step}/{total} · 损失 {loss} · "
    "{tps} token/秒 · 峰值内存 {mem} MiB · 已用 {elapsed} 秒 · 剩余 {eta} 秒",
    "already": "已有训练在进行中。", "nothing_to_stop": "没有正在运行的任务。",
    "nothing_to_resume": "请选择一个有检查点的运行名称以继续训练。",
    "mode": "对话对象", "mode_base": "基础模型", "mode_adapter": "基础模型 + 适配器",
    "mode_compare": "两者并排对比", "adapter": "适配器（输出目录中的运行）",
    "refresh": "刷新", "system": "系统提示词", "message": "消息", "send": "发送",
    "clear": "清空", "base_chat": "基础模型", "tuned_chat": "基础模型 + 适配器",
    "sampling": "采样参数", "need_adapter": "此模式需要选择适配器。",
    "eval_run": "开始评估", "metrics": "指标", "predictions": "预测与参考答案对照",
    "eval_help": "在数据集上运行 `tunesmith predict`，计算 BLEU-4 / ROUGE。",
    "predict_missing": "此版本没有 `tunesmith predict`。",
    "export_run": "合并并导出", "export_name": "导出文件夹（输出目录中）",
    "export_check": "合并检查（export_check.json）",
    "export_help": "运行 `tunesmith export`：合并适配器并保存 safetensors 分片或单个 GGUF 文件。",
    "export_missing": "此版本没有 `tunesmith export`。",
    "runs_table": "输出目录中的运行", "compare": "对比损失曲线",
    "run_detail": "运行", "config": "配置", "final_metrics": "最终指标",
    "loss_plot": "损失曲线", "error": "错误：{msg}", "done": "完成", "working": "运行中……",
    "job_log": "日志",
}

STRINGS = {"en": EN, "zh": ZH}
LANGUAGES = tuple(STRINGS)


def t(lang: str, key: str, **fmt) -> str:
    """The text for ``key`` in ``lang`` (English if missing), formatted with ``fmt``."""
    text = STRINGS.get(lang, EN).get(key) or EN[key]
    return text.format(**fmt) if fmt else text


class Labels:
    """Components whose text follows the language switch: ``(component, key, attribute)``."""

    def __init__(self, lang: str):
        self.lang = lang
        self.items: list[tuple[object, str, str]] = []

    def __call__(self, component, key: str, attr: str = "label"):
        self.items.append((component, key, attr))
        return component

    def text(self, key: str) -> str:
        return t(self.lang, key)

    def components(self) -> list:
        return [c for c, _, _ in self.items]

    def updates(self, lang: str) -> list[dict]:
        import gradio as gr

        out = []
        for _, key, attr in self.items:
            if attr == "choices":  # key is "a,b,c": radio choices as (text, value)
                out.append(gr.update(choices=[(t(lang, f"mode_{v}"), v) for v in key.split(",")]))
            elif attr == "heading":
                out.append(gr.update(value=f"### {t(lang, key)}"))
            else:
                out.append(gr.update(**{attr: t(lang, key)}))
        return out
