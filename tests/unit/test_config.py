import pytest

from tunesmith.config import load_config, parse_overrides, save_config
from tunesmith.errors import ConfigError


def test_defaults_and_overrides_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1.0e-4\nlora_rank: 8\ndataset: a.json\n")
    cfg = load_config(str(path), ["learning_rate=3e-4", "--lora_rank", "16", "--gradient_checkpointing"])
    assert cfg.train.learning_rate == pytest.approx(3e-4)
    assert cfg.method.params["lora_rank"] == 16
    assert cfg.train.gradient_checkpointing is True
    assert cfg.data.dataset == ["a.json"]


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown key 'learnig_rate'.*did you mean 'learning_rate'"):
        load_config(None, ["learnig_rate=1e-4"])


@pytest.mark.parametrize("arg,match", [
    ("lora_rank=-1", "lora_rank"), ("learning_rate=abc", "learning_rate"),
    ("cutoff_len=0", "cutoff_len"), ("train_on=everythin", "did you mean 'everything'"),
    ("bf16=maybe", "true or false"),
])
def test_bad_values_fail_before_loading(arg, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [arg])


def test_method_keys_of_another_method_are_ignored():
    cfg = load_config(None, ["method=full", "lora_rank=8"])
    assert cfg.method.method == "full" and cfg.method.params == {}


def test_llamafactory_command_line_is_accepted():
    argv = ["--model_name_or_path", "x", "--stage", "sft", "--do_train", "--finetuning_type", "lora",
            "--template", "qwen", "--dataset", "identity", "--output_dir", "o",
            "--learning_rate", "0.0005", "--num_train_epochs", "8", "--cutoff_len", "4096",
            "--logging_steps", "1", "--warmup_ratio", "0.1", "--weight_decay", "0.1",
            "--gradient_accumulation_steps", "8", "--save_total_limit", "1", "--save_steps", "256",
            "--seed", "42", "--data_seed", "42", "--lr_scheduler_type", "cosine", "--overwrite_cache",
            "--preprocessing_num_workers", "16", "--plot_loss", "--overwrite_output_dir",
            "--per_device_train_batch_size", "1", "--fp16"]
    cfg = load_config(None, argv)
    assert cfg.method.method == "lora" and cfg.train.do_train and cfg.train.fp16
    assert cfg.train.num_train_epochs == 8 and cfg.data.cutoff_len == 4096


def test_quantization_bit_selects_qlora():
    cfg = load_config(None, ["finetuning_type=lora", "quantization_bit=4"])
    assert cfg.method.method == "qlora"


def test_yaml_python_tags_are_rejected(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("learning_rate: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(path))


def test_saved_config_reruns_identically(tmp_path):
    cfg = load_config(None, ["learning_rate=2e-4", "lora_rank=32", "dataset=a.json,b.json"])
    path = save_config(cfg, tmp_path)
    again = load_config(str(path))
    assert again.to_flat() == load_config(None, {**cfg.to_flat()}).to_flat()
    assert again.train.learning_rate == pytest.approx(2e-4)


def test_override_parsing_forms():
    assert parse_overrides(["a=1", "--b", "2", "--c", "--d=x"]) == {"a": "1", "b": "2", "c": "true", "d": "x"}


def test_flag_followed_by_key_value_is_two_overrides():
    assert parse_overrides(["--do_predict", "do_train=false", "--seed", "7"]) == \
        {"do_predict": "true", "do_train": "false", "seed": "7"}
