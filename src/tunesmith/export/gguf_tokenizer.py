"""The tokenizer inside a GGUF file, written so llama.cpp splits text into the same ids as HF.

Two kinds, as llama.cpp's ``convert_hf_to_gguf.py`` writes them:

- ``gpt2``: byte-level BPE (SmolLM2, Qwen, Llama 3, DeepSeek-LLM): the tokens in id order, their
  types, the merges, and ``tokenizer.ggml.pre``, llama.cpp's name for the pre-tokenizer regex.
  llama.cpp recognises a regex by hashing the tokenizer's ids for one probe text; the hashes of
  the families we write are kept here (a tokenizer we do not know gets ``default``: llama.cpp then
  uses the GPT-2 regex and warns).
- ``llama``: SentencePiece (Mistral v0.1-0.3, Yi, Llama 2): pieces with scores and types. The
  scores decide llama.cpp's merge order. With the model's ``tokenizer.model`` they are read from
  it; from a ``tokenizer.json`` alone (byte-fallback BPE) they are the merge ranks, which gives
  the same order as HF's BPE.

Special token ids, the add-BOS/EOS behaviour (measured by encoding, not read from a file) and
the chat template complete the vocabulary.
"""

from __future__ import annotations

import json
import re
from hashlib import sha256
from pathlib import Path

from ..errors import ConfigError
from .formats import end_of_turn_ids, prepare_tokenizer

# llama.cpp's probe text for pre-tokenizer detection (convert_hf_to_gguf.py, get_vocab_base_pre)
CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL")

# sha256 of str(ids of CHKTXT) -> llama.cpp pre-tokenizer name, for the families we export
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
}
SPECIAL_KINDS = ("bos", "eos", "unk", "sep", "pad", "mask")
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def pre_tokenizer_name(tokenizer) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a byte-level BPE tokenizer (``default`` if unknown)."""
    digest = sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    return PRE_TOKENIZERS.get(digest, "default")


def tokenizer_json(tokenizer) -> dict | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return json.loads(backend.to_str()) if backend is not None else None


def vocab_kind(tokenizer, source: Path | None) -> str:
    """``gpt2`` (byte-level BPE) or ``llama`` (SentencePiece); anything else is refused."""
    spec = tokenizer_json(tokenizer)
    model = (spec or {}).get("model", {})
    if model.get("type") == "BPE" and not model.get("byte_fallback", False):
        return "gpt2"
    if model.get("type") == "BPE" or (source is not None and (source / "tokenizer.model").is_file()):
        return "llama"
    raise ConfigError(f"export_format: gguf: cannot write a {model.get('type', type(tokenizer).__name__)} "
                      "tokenizer; it writes byte-level BPE (gpt2) and SentencePiece (llama) ones")


def write_vocab(writer, tokenizer, template, vocab_size: int, source: Path | None) -> None:
    """Tokens, types (and scores or merges), special ids, BOS/EOS behaviour, chat template.

    Args:
        vocab_size: the model's embedding rows (ids past the tokenizer become ``[PADi]``).
        source: the base model directory (its ``tokenizer.model``, when there is one).
    """
    kind = vocab_kind(tokenizer, source)
    writer.add_tokenizer_model(kind)
    if kind == "gpt2":
        tokens, types = _bpe_tokens(tokenizer, vocab_size)
        writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(_merges(tokenizer_json(tokenizer)))
    else:
        tokens, scores, types = _spm_tokens(tokenizer, vocab_size, source)
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
    _write_specials(writer, tokenizer, template)
    writer.add_chat_template(prepare_tokenizer(tokenizer, template).chat_template or "")


def _added_type(text: str, token):
    """Added tokens: control when special (or shaped like ``<|...|>``), else user-defined."""
    import gguf

    special = token.special or (text.startswith("<|") and text.endswith("|>"))
    return gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED


def _bpe_tokens(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Byte-level tokens in id order; ids the tokenizer lacks become unused ``[PADi]``."""
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = dict(tokenizer.added_tokens_decoder)
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(reverse[i])
        types.append(_added_type(reverse[i], added[i]) if i in added else gguf.TokenType.NORMAL)
    return tokens, types


def _merges(spec: dict) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]


def _spm_tokens(tokenizer, vocab_size: int, source: Path | None):
    """SentencePiece pieces, scores and types: from ``tokenizer.model`` when the base has one,
    else from ``tokenizer.json`` with the merge ranks as scores."""
    import gguf

    model_file = source / "tokenizer.model" if source is not None else None
    scores = (_spm_file_scores(model_file) if model_file is not None and model_file.is_file()
              else _merge_rank_scores(tokenizer_json(tokenizer)))
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = dict(tokenizer.added_tokens_decoder)
    tokens, out_scores, types = [], [], []
    for i in range(vocab_size):
        text = reverse.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            out_scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
            continue
        kind = _spm_type(tokenizer, i, text, added)
        if kind == gguf.TokenType.USER_DEFINED:
            text = text.replace("\u2581", " ")  # llama.cpp matches user tokens on plain spaces
        tokens.append(text)
        out_scores.append(-1000.0 if i in added else scores.get(i, 0.0))
        types.append(kind)
    return tokens, out_scores, types


def _spm_type(tokenizer, token_id: int, text: str, added: dict):
    import gguf

    if token_id == tokenizer.unk_token_id:
        return gguf.TokenType.UNKNOWN
    if _BYTE_PIECE.fullmatch(text):
        return gguf.TokenType.BYTE
    return _added_type(text, added[token_id]) if token_id in added else gguf.TokenType.NORMAL


def _spm_file_scores(path: Path) -> dict[int, float]:
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor(model_file=str(path))
    return {i: sp.GetScore(i) for i in range(sp.vocab_size())}


def _merge_rank_scores(spec: dict) -> dict[int, float]:
    """Score = minus the rank of the merge that makes the token: llama.cpp merges the
    highest-scoring pair first, HF's BPE the lowest rank first, so both merge in one order."""
    vocab = spec["model"]["vocab"]
    scores: dict[int, float] = {}
    for rank, merge in enumerate(_merges(spec)):
        token_id = vocab.get(merge.replace(" ", "", 1))
        if token_id is not None and token_id not in scores:
            scores[token_id] = -float(rank)
    return scores


def _write_specials(writer, tokenizer, template) -> None:
    """bos/eos/unk/pad ids, the end-of-turn id, and whether llama.cpp adds BOS/EOS itself."""
    for kind in SPECIAL_KINDS:
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if isinstance(token_id, int):
            getattr(writer, f"add_{kind}_token_id")(token_id)
    turn_end = [i for i in end_of_turn_ids(tokenizer, template) if i != tokenizer.eos_token_id]
    if turn_end or tokenizer.eos_token_id is not None:
        writer.add_eot_token_id(turn_end[0] if turn_end else tokenizer.eos_token_id)
    ids = tokenizer("a")["input_ids"]  # what the HF tokenizer adds around plain text
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    writer.add_add_bos_token(bool(ids) and bos is not None and ids[0] == bos)
    writer.add_add_eos_token(len(ids) > 1 and eos is not None and ids[-1] == eos)
