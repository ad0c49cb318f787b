"""Tiny random models of each GGUF architecture, built offline for the llama.cpp round trips:
qwen2 (q/k/v biases, tied embeddings, linear rope scaling), qwen3 (q/k norms, head_dim apart
from hidden/heads), mistral (a SentencePiece tokenizer with a ``tokenizer.model``), llama
(Llama 3 rope scaling). Weights that start at 0 or 1 (biases, norms) are randomised so they
matter."""

from __future__ import annotations

from pathlib import Path

import torch

SPM_CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "Who are you? I am an assistant.",
    "Fine-tuning adapts a pretrained model to new data.", "Numbers: 12, 345 and 6789.",
    "[INST] Tell me a story about a lighthouse keeper. [/INST]", "Bonjour, ça va très bien !",
]


def randomise(model, seed: int = 0) -> None:
    """Biases and norm weights get random values (their defaults, 0 and 1, hide layout bugs)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)


def _save(model, tokenizer, out: Path) -> Path:
    randomise(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_qwen2(tokenizer, out: Path) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         rope_scaling={"rope_type": "linear", "factor": 2.0}, rope_theta=1e6,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return _save(Qwen2ForCausalLM(config), tokenizer, out)


def build_qwen3(tokenizer, out: Path) -> Path:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(2)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96,
                         head_dim=16, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    return _save(Qwen3ForCausalLM(config), tokenizer, out)


def build_llama3_rope(tokenizer, out: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, rope_scaling=rope, rope_theta=10000.0,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    return _save(LlamaForCausalLM(config), tokenizer, out)


def build_spm_tokenizer(work: Path):
    """A SentencePiece BPE model trained offline, and the HF fast tokenizer of the same pieces
    (byte fallback, Llama-style ``▁`` spaces, BOS added), as Mistral v0.1-0.3 ship them."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(SPM_CORPUS * 20), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "tok"), vocab_size=400, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=True, normalization_rule_name="identity", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(work / "tok.model"))
    vocab = {sp.id_to_piece(i): i for i in range(sp.vocab_size())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=_spm_merges(sp, vocab), unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 unk_token="<unk>")
    return hf, work / "tok.model"


def _spm_merges(sp, vocab: dict) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces, ranked by the piece's id (its score order)."""
    found = []
    for piece, pid in vocab.items():
        if sp.is_control(pid) or sp.is_unknown(pid) or sp.is_byte(pid):
            continue
        found += [(pid, vocab[piece[:k]], vocab[piece[k:]], piece[:k], piece[k:])
                  for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
    return [(left, right) for *_, left, right in sorted(found)]


def build_mistral(work: Path, out: Path) -> Path:
    import shutil

    from transformers import MistralConfig, MistralForCausalLM

    from tunesmith.data.template_library import NAMED_TEMPLATES

    tokenizer, model_file = build_spm_tokenizer(work)
    tokenizer.chat_template = NAMED_TEMPLATES["mistral"]["jinja"]
    torch.manual_seed(4)
    config = MistralConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                           head_dim=16, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=512,
                           sliding_window=None, tie_word_embeddings=False, bos_token_id=1,
                           eos_token_id=2)
    _save(MistralForCausalLM(config), tokenizer, out)
    shutil.copy(model_file, out / "tokenizer.model")
    return out
