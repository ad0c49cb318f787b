"""How the GGUF files of an export run in llama.cpp: size, perplexity, agreement, speed.

    python -m tunesmith.export.gguf_report EXPORT_DIR [--text FILE] [--threads N]

For each ``*.gguf`` file, llama.cpp (``llama-cpp-python``) scores a held-out text (built in, or
``--text``): perplexity, and the share of positions whose top-1 next token equals the reference
file's (the most precise file of the export: f32 > f16 > bf16 > q8_0 ...), over all positions and
over the positions where the reference is decided (its top token leads by ``DECIDED`` logits).
Speed is llama.cpp's own: prompt tokens/s over the text and generated tokens/s for a greedy
continuation. Numbers taken on a shared machine are only indicative.

``--weights`` separates what the file holds from how llama.cpp computes with it: each file is
also loaded by transformers (its tensors dequantized to fp32) and run in fp32 on the same tokens,
and ``top1_agreement_weights`` is its agreement with the reference file run the same way. llama.cpp's
quantized kernels also round the activations (to 8 bits per block of 32 for Q8_0 weights), which
no export controls: the gap between the two agreements is that rounding.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

# A held-out text: plain English prose that no tunesmith example trains on (~900 tokens, so a
# perplexity difference of a few percent is not noise from a handful of tokens).
HELD_OUT = (
    "The lighthouse stood on a low island of black rock, a mile from the harbour mouth. For most "
    "of the year its keeper lived there alone, rowing to the town once a week for bread, oil and "
    "newspapers. He kept a log of every ship that passed, the direction of the wind at dawn and "
    "dusk, and the height of the waves when the winter storms came in from the west. In the long "
    "evenings he mended nets for the fishermen, who paid him in salted cod and gossip. Children "
    "from the town sometimes begged to visit, and on calm summer days he would let them climb the "
    "spiral stairs to the lamp room, where the great lens turned slowly and threw the light far "
    "out over the water. He told them that the lens had been made in Paris more than a hundred "
    "years before, that it weighed as much as a horse, and that it floated on a bath of mercury so "
    "that a single hand could turn it. When the harbour board finally replaced the lamp with an "
    "automatic beacon, the keeper moved to a small house near the quay. He still rose before the "
    "sun, still wrote the wind and the weather in his book, and still looked out each night to "
    "make sure that the light was burning.\n\n"
    "Bread is one of the oldest prepared foods. Flour and water are mixed into a dough, which is "
    "kneaded until it becomes smooth and elastic; the kneading develops gluten, a network of "
    "proteins that traps the gas released by yeast. The dough is then left in a warm place to "
    "rise, shaped into loaves and baked. A hot oven sets the crust quickly, while steam keeps the "
    "surface soft long enough for the loaf to expand. Bakers have argued for centuries about the "
    "best flour, the right amount of salt and the ideal temperature, but most agree that time is "
    "the most important ingredient. A slow rise in a cool kitchen gives the yeast and the bacteria "
    "in the dough a chance to produce the acids and aromas that make good bread taste of more than "
    "flour.\n\n"
    "Rivers shape the land they cross. Over thousands of years, a river cuts its bed deeper, "
    "carries sand and gravel downstream and drops them where the current slows, building "
    "sandbanks, islands and wide deltas at the sea. In spring, melting snow in the mountains can "
    "raise the water by several metres in a few days, and towns along the banks have built walls, "
    "dams and channels to keep the floods away. Yet the same floods once made the valleys fertile, "
    "spreading fresh soil over the fields every year. Engineers today try to balance both needs, "
    "leaving room for the river to spread out in meadows and wetlands upstream so that the towns "
    "further down stay dry.\n\n"
    "The old railway station had been closed for twenty years when a group of volunteers decided "
    "to open it again as a small museum. They cleared the weeds from the platforms, repaired the "
    "roof and painted the ticket office in its original green and cream. A retired driver lent "
    "them his collection of timetables, lamps and uniforms, and a local school built a model of "
    "the line as it had looked in its busiest years, with tiny signal boxes and a goods yard full "
    "of wagons. On the first open day more than a thousand people came, many of them to find the "
    "bench where they had once waited for a train to the city, to a new job, or to someone they "
    "loved.")

DECIDED = 1.0  # logits: positions where the reference's top token leads the runner-up by this much
PRECISION = ("f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")


def load(path: Path, n_ctx: int = 2048, threads: int | None = None):
    """A llama.cpp model over ``path`` keeping logits for every position."""
    import logging

    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    return llama_cpp.Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
                           n_threads=threads)


def score(llm, ids: list[int]) -> tuple[np.ndarray, float, np.ndarray]:
    """From one forward pass: the top-1 next token per position (T-1,), the perplexity of
    ids[1:], and the lead of the top token over the runner-up in logits (T-1,)."""
    llm.reset()
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids) - 1], dtype=np.float64)
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -logp[np.arange(len(ids) - 1), ids[1:]].mean()
    ranked = np.sort(logits, -1)
    return logits.argmax(-1), float(math.exp(nll)), ranked[:, -1] - ranked[:, -2]


def speed(path: Path, ids: list[int], threads: int | None = None, new_tokens: int = 64) -> dict:
    """llama.cpp's prompt and generation speed (tokens/s, wall clock) as people run it: logits
    for the last position only, greedy decoding after the prompt."""
    import llama_cpp

    llm = llama_cpp.Llama(str(path), n_ctx=2048, n_batch=512, verbose=False, n_threads=threads)
    try:
        start = time.perf_counter()
        llm.eval(ids)
        prompt_s = time.perf_counter() - start
        start, made = time.perf_counter(), 0
        for _ in llm.generate(ids, temp=0.0, reset=True):  # the prompt is reused (prefix match)
            made += 1
            if made >= new_tokens:
                break
        return {"prompt_tok_s": round(len(ids) / prompt_s, 1),
                "gen_tok_s": round(made / (time.perf_counter() - start), 1)}
    finally:
        llm.close()


def reference_file(files: list[Path]) -> Path:
    """The most precise file (by its quantization in the name)."""
    return min(files, key=lambda p: PRECISION.index(p.name.rsplit(".", 2)[-2])
               if p.name.rsplit(".", 2)[-2] in PRECISION else len(PRECISION))


def weights_top1(path: Path, ids: list[int]) -> np.ndarray:
    """Top-1 next tokens of the file's weights dequantized to fp32 and run by transformers."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    return logits.argmax(-1).numpy()


def report(export_dir: Path, text: str = HELD_OUT, threads: int | None = None,
           weights: bool = False) -> list[dict]:
    """One row per GGUF file: size, perplexity, top-1 agreement with the reference, speed."""
    files = sorted(Path(export_dir).glob("*.gguf"))
    ref = reference_file(files)
    llm = load(ref, threads=threads)
    ids = llm.tokenize(text.encode(), add_bos=True)
    ref_top, _, lead = score(llm, ids)
    llm.close()
    decided = lead >= DECIDED
    ref_weights = weights_top1(ref, ids) if weights else None
    rows = []
    for path in files:
        llm = load(path, threads=threads)
        top, ppl, _ = score(llm, ids)
        llm.close()
        rows.append({"file": path.name, "bytes": path.stat().st_size, "perplexity": round(ppl, 4),
                     "top1_agreement": round(float((top == ref_top).mean()), 4),
                     "top1_agreement_decided": round(float((top == ref_top)[decided].mean()), 4),
                     "tokens": len(ids), **speed(path, ids, threads)})
        if weights:
            same = weights_top1(path, ids) == ref_weights
            rows[-1]["top1_agreement_weights"] = round(float(same.mean()), 4)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("--text", help="a UTF-8 text file to score (default: a built-in paragraph)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--weights", action="store_true",
                        help="also the agreement of each file's weights run in fp32 by transformers")
    args = parser.parse_args(argv)
    text = Path(args.text).read_text(encoding="utf-8") if args.text else HELD_OUT
    rows = report(Path(args.export_dir), text, args.threads, args.weights)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
