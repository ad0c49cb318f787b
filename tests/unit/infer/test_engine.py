"""The HF engine: stops at end-of-turn and stop strings, batches exactly, seeds, streams."""

import threading

import pytest
import torch

from tunesmith.errors import TunesmithError
from tunesmith.infer.engine import ContextLengthError, GenParams, check_context
from tunesmith.infer.hf import HFEngine
from tunesmith.infer.stops import StopFilter, cut_at_stop

from .helpers import TAUGHT, taught_engine


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return taught_engine(tiny_model_dir)


@pytest.fixture(scope="module")
def random_engine(tiny_model_dir):
    """The untrained tiny model: it never emits <|im_end|>, so it runs to max_new_tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.data.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    return HFEngine(model, tokenizer, get_template("auto", tokenizer))


def test_stops_at_template_end_of_turn(engine):
    # The tokenizer's EOS is <|endoftext|> here: only the template says <|im_end|> ends a turn.
    assert engine.tokenizer.eos_token == "<|endoftext|>"
    im_end = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in engine.eos_ids
    for messages, answer in TAUGHT:
        out = engine.generate(messages, GenParams(max_new_tokens=60))
        assert out.text == answer
        assert out.finish_reason == "stop"
        n_answer = len(engine.tokenizer(answer, add_special_tokens=False)["input_ids"])
        assert out.completion_tokens == n_answer + 1  # the answer, then <|im_end|>, then nothing


def test_stop_strings_cut_text_in_generate_and_stream(engine):
    messages = TAUGHT[1][0]
    params = GenParams(max_new_tokens=60, stop=["tiny"])
    out = engine.generate(messages, params)
    assert out.text == "I am Nova, a " and out.finish_reason == "stop"
    assert "".join(engine.stream(messages, params)) == "I am Nova, a "
    assert engine.generate(messages, GenParams(stop=["Nova", "am"])).text == "I "


def test_stream_pieces_join_to_the_generated_text(engine):
    messages = TAUGHT[1][0]
    pieces = list(engine.stream(messages, GenParams(max_new_tokens=60)))
    assert len(pieces) > 1
    assert "".join(pieces) == engine.generate(messages, GenParams(max_new_tokens=60)).text


def test_batched_greedy_equals_one_at_a_time(random_engine):
    prompts = [[{"role": "user", "content": "Hi"}],
               [{"role": "user", "content": "Tell me a long story about a cat and a dog."}],
               [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
               [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "and then what happened after that?"}]]
    params = GenParams(max_new_tokens=12)
    single = [random_engine.generate(p, params) for p in prompts]
    batched = random_engine.batch_generate(prompts, params)
    assert len({random_engine.count_tokens(p) for p in prompts}) == 4  # real left padding
    assert [b.text for b in batched] == [s.text for s in single]
    assert [b.completion_tokens for b in batched] == [12] * 4
    assert all(b.finish_reason == "length" for b in batched)


def test_seeded_sampling_is_reproducible(random_engine):
    messages = [{"role": "user", "content": "Hi"}]
    params = GenParams(max_new_tokens=10, temperature=1.0, top_p=0.95, top_k=0, seed=7)
    first = random_engine.generate(messages, params).text
    assert random_engine.generate(messages, params).text == first
    assert "".join(random_engine.stream(messages, params)) == first
    other = GenParams(max_new_tokens=10, temperature=1.0, top_p=0.95, top_k=0, seed=8)
    assert random_engine.generate(messages, other).text != first


def test_system_prompt_and_history_use_the_chat_template(random_engine):
    tok = random_engine.tokenizer
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo."},
                {"role": "user", "content": "Again?"}]
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "You are terse." in expected and "Yo." in expected
    assert random_engine.encode(messages) == tok(expected, add_special_tokens=False)["input_ids"]


def test_prompt_longer_than_context_is_a_clear_error(random_engine):
    long = [{"role": "user", "content": "word " * 600}]
    n = random_engine.count_tokens(long)
    with pytest.raises(ContextLengthError) as err:
        random_engine.generate(long, GenParams(max_new_tokens=5))
    assert isinstance(err.value, TunesmithError)
    assert (err.value.prompt_tokens, err.value.context_length) == (n, 512)
    assert str(n) in str(err.value) and "512" in str(err.value)
    with pytest.raises(ContextLengthError):
        next(random_engine.stream(long, GenParams(max_new_tokens=5)))


def test_generation_budget_is_shortened_to_fit_the_context(random_engine):
    assert check_context(500, 100, 512) == 12
    with pytest.raises(ContextLengthError):
        check_context(500, 100, 512, strict=True)
    messages = [{"role": "user", "content": "word " * 440}]
    room = 512 - random_engine.count_tokens(messages)
    out = random_engine.generate(messages, GenParams(max_new_tokens=200))
    assert out.completion_tokens == room and out.finish_reason == "length"


def test_closing_a_stream_stops_generation(random_engine):
    before = threading.active_count()
    stream = random_engine.stream([{"role": "user", "content": "Hi"}], GenParams(max_new_tokens=400))
    next(stream)
    stream.close()  # a client that went away
    assert threading.active_count() == before


def test_stop_filter_holds_back_split_stop_strings():
    f = StopFilter(["###"])
    assert f.feed("Hello #") == "Hello "
    assert f.feed("#") == ""
    assert f.feed("# rest") == ""
    assert f.flush() == ""
    g = StopFilter(["###"])
    assert g.feed("a #") + g.feed("b") + g.flush() == "a #b"
    assert cut_at_stop("x STOP y END", ["END", "STOP"]) == ("x ", True)


def test_from_config_maps_sampling_keys():
    from tunesmith.config import load_config

    cfg = load_config(None, {"temperature": 0.7, "top_p": 0.9, "stop": "END,###"})
    p = GenParams.from_config(cfg.infer, seed=3)
    assert (p.temperature, p.top_p, p.stop, p.seed, p.greedy) == (0.7, 0.9, ["END", "###"], 3, False)
    assert GenParams.from_config(load_config(None, {}).infer).greedy


def test_slot_cache_growth_compaction_and_refills_keep_greedy_answers(random_engine, monkeypatch):
    """Rows through 2 slots: finished rows' slots are refilled mid-run, and the cache grows (a
    16-column start) and compacts (short rows arriving late leave gaps); every answer equals
    the row generated alone."""
    from tunesmith.infer import slots
    from tunesmith.infer.batching import Job, completion_of, generate_jobs

    rows = [(list(range(5, 65)), 2), (list(range(7, 12)), 50), (list(range(9, 14)), 50),
            (list(range(20, 40)), 6), (list(range(3, 6)), 30)]
    def run(capacity, chosen):
        jobs = [Job(ids, GenParams(max_new_tokens=k), index=i) for i, (ids, k) in enumerate(chosen)]
        generate_jobs(random_engine, jobs, capacity)
        return [completion_of(j).token_ids for j in jobs]

    single = [run(1, [row])[0] for row in rows]
    monkeypatch.setattr(slots, "MIN_COLUMNS", 16)
    events = []
    for name in ("_compact", "_grow"):
        original = getattr(slots.HFDecoder, name)
        monkeypatch.setattr(slots.HFDecoder, name, (lambda f, tag: lambda self, *a: (
            events.append(tag), f(self, *a))[1])(original, name))
    assert run(2, rows) == single
    assert "_grow" in events and "_compact" in events


def test_repeated_prompts_are_prefilled_once_with_the_same_answers(random_engine, monkeypatch):
    """GRPO asks for several completions of each prompt: the decoder prefills each distinct
    prompt once and copies its cache rows; every row still samples on its own (its seed), and
    answers equal each row generated alone, also when copies finish at different lengths."""
    from tunesmith.infer import slots
    from tunesmith.infer.batching import Job, completion_of, generate_jobs

    a, b = list(range(5, 25)), list(range(30, 37))
    rows = [(a, 9, 1), (a, 3, 2), (b, 7, 3), (a, 9, 4), (b, 12, 5), (b, 12, 5)]

    def run(chosen, capacity):
        jobs = [Job(ids, GenParams(max_new_tokens=k, temperature=1.0, top_k=0, top_p=1.0,
                                   seed=seed), index=i)
                for i, (ids, k, seed) in enumerate(chosen)]
        generate_jobs(random_engine, jobs, capacity)
        return [completion_of(j).token_ids for j in jobs]

    single = [run([row], 1)[0] for row in rows]
    prefilled = []
    original = slots.HFDecoder._prefill_rows
    monkeypatch.setattr(slots.HFDecoder, "_prefill_rows",
                        lambda self, jobs: (prefilled.append(len(jobs)), original(self, jobs))[1])
    assert run(rows, len(rows)) == single
    assert prefilled == [2]  # two distinct prompts for six rows
    assert single[4] == single[5] and single[0] != single[3]  # same seed same text; else not
