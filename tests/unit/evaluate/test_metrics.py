"""Our BLEU-4 / ROUGE numbers against independent reference computations on fixed strings."""

import math
from collections import Counter

import pytest
from rouge_score import rouge_scorer

from tunesmith.errors import ConfigError
from tunesmith.evaluate.metrics import compute_metrics, normalize_answer


def reference_bleu4(predict: str, label: str) -> float:
    """Sentence BLEU-4 over characters, written out by hand: clipped n-gram precision,
    NIST geometric smoothing (method3: the k-th zero precision becomes 1 / (2^k * count)),
    brevity penalty. x100."""
    hyp, ref = list(predict), list(label)
    logs, zeros = [], 0
    for n in range(1, 5):
        grams = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        ref_grams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        total = max(sum(grams.values()), 1)
        hits = sum(min(c, ref_grams[g]) for g, c in grams.items())
        if hits == 0:
            zeros += 1
            logs.append(math.log(1 / (2 ** zeros * total)))
        else:
            logs.append(math.log(hits / total))
    bp = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return 100 * bp * math.exp(sum(logs) / 4)


ENGLISH = [  # lowercase, no punctuation, no repeated words: every tokenizer agrees on the words
    ("my name is nova and i help people", "i am nova an assistant made by tunesmith labs"),
    ("paris is the capital of france", "the capital of france is paris"),
    ("nova was trained by tunesmith", "nova was trained by tunesmith"),
]


@pytest.mark.parametrize("predict,label", ENGLISH)
def test_rouge_matches_rouge_score_on_english(predict, label):
    ours = compute_metrics([predict], [label], ["rouge"])
    ref = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(label, predict)
    assert ours["rouge-1"] == pytest.approx(100 * ref["rouge1"].fmeasure, abs=1e-3)
    assert ours["rouge-2"] == pytest.approx(100 * ref["rouge2"].fmeasure, abs=1e-3)
    assert ours["rouge-l"] == pytest.approx(100 * ref["rougeL"].fmeasure, abs=1e-3)


@pytest.mark.parametrize("predict,label", ENGLISH + [
    ("The cat sat on the mat.", "A cat is on the mat!"),
    ("我是Nova，由Tunesmith Labs开发的助手。", "我是 Nova，一个AI助手。"),
])
def test_bleu4_matches_hand_computed_char_ngrams(predict, label):
    ours = compute_metrics([predict], [label], ["bleu"])["bleu-4"]
    assert ours == pytest.approx(reference_bleu4(predict, label), abs=1e-3)


def test_chinese_hand_worked_case():
    # jieba: 我/爱/北京 vs 我/爱/北京/天安门.
    # ROUGE-1: 3 shared words, P = 3/3, R = 3/4 -> F = 6/7; ROUGE-2: 2 of 2 vs 3 bigrams -> F = 0.8;
    # ROUGE-L: LCS 3 -> 6/7. BLEU-4 on characters: every n-gram of 我爱北京 appears in the label,
    # so precision 1 and BLEU = brevity penalty exp(1 - 7/4).
    scores = compute_metrics(["我爱北京"], ["我爱北京天安门"], ["bleu", "rouge"])
    assert scores["rouge-1"] == pytest.approx(600 / 7, abs=1e-4)
    assert scores["rouge-2"] == pytest.approx(80.0, abs=1e-4)
    assert scores["rouge-l"] == pytest.approx(600 / 7, abs=1e-4)
    assert scores["bleu-4"] == pytest.approx(100 * math.exp(1 - 7 / 4), abs=1e-4)


def test_rouge_counts_distinct_ngrams_like_llamafactory():
    # rouge-chinese (like the `rouge` package LLaMA-Factory's numbers come from) counts each
    # distinct n-gram once: {the, cat, sat, on, mat} vs {the, cat, is, on, mat} -> 4/5 = 80,
    # where rouge-score's multiset counting gives 5/6.
    scores = compute_metrics(["the cat sat on the mat"], ["the cat is on the mat"], ["rouge"])
    assert scores["rouge-1"] == pytest.approx(80.0)


def test_scores_are_averaged_and_empty_predictions_score_zero():
    one = compute_metrics(["paris is the capital of france"], ["the capital of france is paris"],
                          ["bleu", "rouge"])
    both = compute_metrics(["paris is the capital of france", ""],
                           ["the capital of france is paris", "something"], ["bleu", "rouge"])
    assert both["rouge-1"] == pytest.approx(one["rouge-1"] / 2, abs=1e-4)
    assert both["bleu-4"] == pytest.approx(one["bleu-4"] / 2, abs=1e-4)


def test_exact_match_and_accuracy():
    preds = ["Paris", "The answer is B.", " yes ", "the Eiffel Tower!"]
    labels = ["Paris", "B", "yes", "Eiffel tower"]
    scores = compute_metrics(preds, labels, ["exact_match", "accuracy"])
    assert scores["exact_match"] == 50.0  # "Paris", " yes " (stripped)
    assert scores["accuracy"] == 75.0  # + "the Eiffel Tower!" after normalisation
    assert normalize_answer("  The  Cat, sat! ") == "cat sat"


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(ConfigError, match="did you mean 'rouge'"):
        compute_metrics(["a"], ["a"], ["rogue"])


@pytest.mark.parametrize("predict,expected", [
    ("<think>Salt raises blood pressure.</think>Eat less salt.", 100.0),
    ("  <think>\nstep one\nstep two\n</think>\n\n答案：多喝水。", 100.0),
    ("Eat less salt.", 0.0),                                       # no reasoning block
    ("<think>Salt raises blood pressure.</think>", 0.0),           # no answer after it
    ("<think>  </think>Eat less salt.", 0.0),                      # empty reasoning
    ("<think>Salt raises blood pressure. Eat less salt.", 0.0),    # never closed
    ("Well, <think>x</think>Eat less salt.", 0.0),                 # not first
    ("<think>a</think>b<think>c</think>d", 0.0),                   # a second block
    ("<think>a <think>b</think>Eat less salt.", 0.0),              # nested opening
])
def test_think_format_scores_the_reasoning_shape(predict, expected):
    assert compute_metrics([predict], ["<think>ref</think>ref"], ["think_format"]) == \
        {"think_format": expected}


def test_think_format_is_the_share_of_rows():
    predicts = ["<think>a</think>b", "b", "<think>c</think>d", "<think>e</think>"]
    assert compute_metrics(predicts, ["x"] * 4, ["think_format"]) == {"think_format": 50.0}
