"""Tests for socialite_utils.evaluation.scoring on a tiny random Llama with a BPE tokenizer trained on the spot.

The reference for score mode is a NAIVE implementation: one unpadded forward pass per prompt+label over the full
sequence, summing token log-softmaxes. Batching, left padding, position ids and logits_to_keep must not change
anything beyond float noise (1e-4).
"""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from socialite_utils.evaluation.scoring import (
    _group_by_prefix,
    generate_answers,
    label_probabilities,
    parse_answer,
    score_label_logprobs,
)
from socialite_utils.tokens import encode_completion, encode_prompt, encode_prompt_completion

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
EMOTIONS = ["anger", "joy", "optimism", "sadness"]
MULTI = ["not offensive", "offensive", "camera with flash", "camera"]
CORPUS = [
    "Instruction: classify the emotion of the tweet.\nInput: I love sunny days\nOutput: joy",
    "Output: anger\nOutput: sadness\nOutput: optimism\nOutput: joy",
    "Output: not offensive offensive",
] * 40


def _train_tokenizer(pre_tokenizer, decoder, normalizer=None, bos: bool = True) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    alphabet = (
        pre_tokenizers.ByteLevel.alphabet() if isinstance(pre_tokenizer, pre_tokenizers.ByteLevel) else []
    )
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, initial_alphabet=alphabet)
    tok.train_from_iterator(CORPUS, trainer)
    # Prepend BOS like Llama tokenizers, so the "special tokens" part of encode_prompt is exercised.
    if bos:
        tok.post_processor = TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (as SmolLM2 / Llama 3)."""
    return _train_tokenizer(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel())


@pytest.fixture(scope="module")
def sp_tokenizer() -> PreTrainedTokenizerFast:
    """SentencePiece style, as Llama 2's fast tokenizer: every text gets a "▁" prefix and spaces become "▁", so a
    standalone " joy" is "▁▁joy" while "...Output: joy" ends in "▁joy"."""
    return _train_tokenizer(
        pre_tokenizers.Split("▁", behavior="merged_with_next"),
        decoders.Metaspace(),
        normalizer=normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
    )


def _tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        # Large random weights: log-probs then depend strongly on context and position, so a padding or
        # position bug moves them far beyond the 1e-4 tolerance (see test_position_ids_matter).
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model(tokenizer) -> LlamaForCausalLM:
    return _tiny_llama(len(tokenizer))


# Uneven lengths on purpose: the batch is left-padded.
PROMPTS = [
    "Instruction: classify the emotion of the tweet.\nInput: I love sunny days so much\nOutput:",
    "Input: ok\nOutput:",
    "Instruction: classify.\nInput: sad\nOutput:",
]
CHAT_PROMPTS = [
    [{"role": "user", "content": "Classify the emotion: I love sunny days"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "sad"}],
]


def naive_logprob(model, tokenizer, prompt, label: str, *, eos: bool = False) -> tuple[float, int]:
    """(sum of label token log-probs, number of label tokens): one full unpadded forward pass, nothing clever."""
    context, completion = encode_prompt_completion(tokenizer, prompt, label, eos=eos)
    ids = torch.tensor([context + completion])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    total = sum(logprobs[len(context) + k - 1, tok].item() for k, tok in enumerate(completion))
    return total, len(completion)


# ---------------------------------------------------------------- tokenization


def test_trl_sft_trainer_tokenizes_exactly_like_us(model, tokenizer, tmp_path):
    """The scored tokens are TRL's trained tokens: context + completion(eos=True) == TRL input_ids, and the
    completion is exactly the part TRL does not mask out of the loss."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [
        {"prompt": PROMPTS[0], "completion": " joy"},
        {"prompt": PROMPTS[1], "completion": " camera with flash"},
        {"prompt": CHAT_PROMPTS[0], "completion": [{"role": "assistant", "content": "joy"}]},
    ]
    args = SFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False)
    for row in rows:
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list([row]), processing_class=tokenizer
        )
        trl_row = trainer.train_dataset[0]
        chat = not isinstance(row["prompt"], str)
        label = row["completion"][0]["content"] if chat else row["completion"][1:]
        context, completion = encode_prompt_completion(tokenizer, row["prompt"], label, eos=True)
        assert context + completion == trl_row["input_ids"]
        assert completion == [
            t for t, lab in zip(trl_row["input_ids"], trl_row["labels"], strict=True) if lab != -100
        ]
        assert context == encode_prompt(tokenizer, row["prompt"])
        # Without EOS: the same tokens minus the end marker (EOS, or the chat template's end of turn).
        no_eos = encode_completion(tokenizer, label, chat, prompt=row["prompt"])
        assert no_eos == completion[: len(no_eos)] and len(no_eos) < len(completion)


def test_encode_prompt_and_completion_basics(tokenizer):
    ids = encode_prompt(tokenizer, "Input: ok\nOutput:")
    assert ids[0] == tokenizer.bos_token_id  # special tokens kept for string prompts
    chat_ids = encode_prompt(tokenizer, CHAT_PROMPTS[0])
    assert tokenizer.decode(chat_ids).endswith("<|im_start|>assistant\n")  # generation prompt added
    # Standalone: " " + label without special tokens; chat: the bare label.
    assert tokenizer.decode(encode_completion(tokenizer, "joy", chat=False)) == " joy"
    assert tokenizer.decode(encode_completion(tokenizer, "joy", chat=True)) == "joy"
    assert encode_completion(tokenizer, "joy", chat=False, eos=True)[-1] == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="chat=True but the prompt is a string prompt"):
        encode_completion(tokenizer, "joy", chat=True, prompt="Output:")
    with pytest.raises(TypeError, match="prompt must be a string"):
        encode_prompt(tokenizer, 42)


def test_empty_prompt_is_a_clear_error(model, tokenizer):
    # Like SmolLM2: no BOS, so "" encodes to nothing.
    no_bos = _train_tokenizer(
        pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), bos=False
    )
    with pytest.raises(ValueError, match="encodes to no tokens"):
        score_label_logprobs(model, no_bos, ["Output:", ""], EMOTIONS, progress=False)
    with pytest.raises(ValueError, match=r"prompts \[1\] encode to no tokens"):
        generate_answers(model, no_bos, ["Output:", ""], progress=False)
    assert score_label_logprobs(model, tokenizer, [], EMOTIONS, progress=False) == []
    assert generate_answers(model, tokenizer, [], progress=False) == []


def test_sentencepiece_style_boundary_uses_joint_tokenization(sp_tokenizer):
    """With a Metaspace tokenizer the standalone " joy" is NOT what TRL trains on; the joint split is."""
    prompt = "Input: I love it\nOutput:"
    joint = sp_tokenizer(prompt + " joy")["input_ids"]
    prompt_ids = encode_prompt(sp_tokenizer, prompt)
    assert joint[: len(prompt_ids)] == prompt_ids
    standalone = encode_completion(sp_tokenizer, "joy", chat=False)
    with_prompt = encode_completion(sp_tokenizer, "joy", chat=False, prompt=prompt)
    assert with_prompt == joint[len(prompt_ids) :]
    assert standalone != with_prompt  # the reason encode_prompt_completion exists


# ---------------------------------------------------------------- score mode


def test_single_token_labels_one_forward_per_prompt_batch(model, tokenizer):
    for lab in EMOTIONS:  # the premise of this test: every label really is one token after each prompt
        for p in PROMPTS:
            assert len(encode_completion(tokenizer, lab, chat=False, prompt=p)) == 1, lab

    logit_shapes = []
    hook = model.register_forward_hook(lambda _m, _i, out: logit_shapes.append(tuple(out.logits.shape)))
    try:
        got = score_label_logprobs(model, tokenizer, PROMPTS, EMOTIONS, batch_size=2, progress=False)
    finally:
        hook.remove()
    # 3 prompts at batch_size 2 -> 2 forwards, each projecting ONLY the last position onto the vocabulary.
    assert logit_shapes == [(2, 1, len(tokenizer)), (1, 1, len(tokenizer))]
    for p, scores in zip(PROMPTS, got, strict=True):
        assert list(scores) == EMOTIONS
        for lab in EMOTIONS:
            assert scores[lab] == pytest.approx(naive_logprob(model, tokenizer, p, lab)[0], abs=1e-4)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_multi_token_labels_match_naive_sum_and_mean(model, tokenizer, share_prefix):
    lengths = {lab: len(encode_completion(tokenizer, lab, chat=False, prompt=PROMPTS[0])) for lab in MULTI}
    assert max(lengths.values()) >= 3 and len(set(lengths.values())) >= 2, lengths  # uneven label lengths too
    max_m = max(lengths.values())

    calls = []
    hook = model.register_forward_hook(
        lambda _m, _i, out: calls.append((tuple(out.logits.shape), out.past_key_values is not None))
    )
    kwargs = {"batch_size": 5, "share_prefix": share_prefix, "progress": False}
    try:
        summed = score_label_logprobs(model, tokenizer, PROMPTS, MULTI, **kwargs)
    finally:
        hook.remove()
    mean = score_label_logprobs(model, tokenizer, PROMPTS, MULTI, normalize="mean", **kwargs)
    n_pairs = len(PROMPTS) * len(MULTI)
    if share_prefix:
        # 3 prompts fit one batch: ONE prompt forward projecting the last position only, then the label
        # continuations (labels of 2+ tokens, 5 per forward) projecting their own max_m - 1 positions only.
        prompt_call, *continuations = calls
        assert prompt_call == ((3, 1, len(tokenizer)), True)
        n_multi = sum(len(PROMPTS) for lab in MULTI if lengths[lab] > 1)
        assert sum(shape[0] for shape, _ in continuations) == n_multi
        assert len(continuations) == math.ceil(n_multi / 5)
        assert all(shape[1] <= max_m - 1 for shape, _ in continuations)
    else:
        # Whole prompt+label sequences, 5 per forward; only max_m + 1 positions projected.
        assert sum(shape[0] for shape, _ in calls) == n_pairs
        assert all(shape[1] <= max_m + 1 for shape, _ in calls)
    for p, s, m in zip(PROMPTS, summed, mean, strict=True):
        for lab in MULTI:
            total, n = naive_logprob(model, tokenizer, p, lab)
            assert s[lab] == pytest.approx(total, abs=1e-4)
            assert m[lab] == pytest.approx(total / n, abs=1e-4)


SHARED_INSTRUCTION = (
    "Instruction: classify the emotion of the tweet. "
    "Answer with one word: anger, joy, optimism or sadness.\nInput:"
)
# One task's prompts (a long common instruction, suffixes of uneven length, one prompt that is a prefix of another)
# mixed with prompts that share almost nothing.
GROUPED_PROMPTS = [
    f"{SHARED_INSTRUCTION} I love sunny days so much\nOutput:",
    "Input: ok\nOutput:",
    f"{SHARED_INSTRUCTION} sad\nOutput:",
    f"{SHARED_INSTRUCTION} sad\nOutput: anger\nInput: sad sad\nOutput:",
    f"{SHARED_INSTRUCTION} ok ok ok\nOutput:",
    "Instruction: classify.\nInput: sad\nOutput:",
]


def _count_input_tokens(model, fn):
    """Run fn() and return (its result, input tokens per forward call) seen by `model`."""
    seen = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(tuple(ids.shape))

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        return fn(), seen
    finally:
        handle.remove()


@pytest.mark.parametrize("labels", [EMOTIONS, MULTI], ids=["single-token", "multi-token"])
def test_common_prefix_runs_once_and_matches_naive(model, tokenizer, labels):
    """A task's shared instruction runs ONCE; every score still equals the naive full-sequence one."""
    shared_len = len(encode_prompt(tokenizer, SHARED_INSTRUCTION))
    assert shared_len >= 16  # the premise: long enough to be shared (MIN_SHARED_PREFIX_TOKENS)

    def run(share: bool):
        return score_label_logprobs(
            model, tokenizer, GROUPED_PROMPTS, labels, batch_size=2, share_common_prefix=share, progress=False
        )

    grouped, calls = _count_input_tokens(model, lambda: run(True))
    whole, calls_whole = _count_input_tokens(model, lambda: run(False))
    for p, g, w in zip(GROUPED_PROMPTS, grouped, whole, strict=True):
        assert list(g) == labels
        for lab in labels:
            assert g[lab] == pytest.approx(naive_logprob(model, tokenizer, p, lab)[0], abs=1e-4), (p, lab)
            assert g[lab] == pytest.approx(w[lab], abs=1e-4)
    # Exactly one batch-of-one forward covers at least the instruction; the grouped prompts then run only their
    # own tokens, so far fewer prompt tokens go through the model.
    prefix_calls = [shape for shape in calls if shape[0] == 1 and shape[1] >= shared_len]
    assert len(prefix_calls) == 1, calls
    tokens, tokens_whole = sum(a * b for a, b in calls), sum(a * b for a, b in calls_whole)
    assert tokens < 0.75 * tokens_whole, (calls, calls_whole)


def test_prefix_groups_split_per_task_when_that_shares_more():
    """Two tasks behind one 20-token chat header: one group per task (header + instruction, 60 tokens), not one
    group sharing only the header; a prompt that shares nothing is scored whole."""
    header, instr_a, instr_b = list(range(100, 120)), list(range(200, 240)), list(range(300, 340))
    items = [(i, header + instr_a + [i, 1], {}) for i in range(5)]
    items += [(5 + i, header + instr_b + [i, 2], {}) for i in range(5)]
    items.append((10, [7, 8, 9], {}))
    groups = _group_by_prefix(items, min_prefix=16)
    assert [(length, sorted(i for i, *_ in members)) for length, members in groups] == [
        (60, [0, 1, 2, 3, 4]),
        (60, [5, 6, 7, 8, 9]),
        (0, [10]),
    ]
    # One task alone: one group; a shorter shared prefix than min_prefix: nothing grouped.
    assert [(n, len(m)) for n, m in _group_by_prefix(items[:5], 16)] == [(60, 5)]
    assert [(n, len(m)) for n, m in _group_by_prefix(items[:5], 61)] == [(0, 5)]


def test_common_prefix_with_absolute_positions(tokenizer):
    """GPT-2 (absolute positions): suffixes after a cached prefix must continue at the prefix's length."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(4)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2
        )
    ).eval()
    got = score_label_logprobs(
        gpt2, tokenizer, GROUPED_PROMPTS, MULTI + EMOTIONS, batch_size=3, progress=False
    )
    for p, scores in zip(GROUPED_PROMPTS, got, strict=True):
        for lab in MULTI + EMOTIONS:
            assert scores[lab] == pytest.approx(naive_logprob(gpt2, tokenizer, p, lab)[0], abs=1e-4), (p, lab)


def test_per_prompt_label_sets_and_eos(model, tokenizer):
    """Tasks differ per prompt: fast (single-token) and slow prompts mix in one call; eos=True scores TRL's EOS."""
    label_sets = [EMOTIONS, MULTI, ["low", "high"]]
    got = score_label_logprobs(model, tokenizer, PROMPTS, label_sets, batch_size=3, progress=False)
    got_eos = score_label_logprobs(model, tokenizer, PROMPTS, label_sets, eos=True, progress=False)
    for p, labels, scores, scores_eos in zip(PROMPTS, label_sets, got, got_eos, strict=True):
        assert list(scores) == labels
        for lab in labels:
            assert scores[lab] == pytest.approx(naive_logprob(model, tokenizer, p, lab)[0], abs=1e-4)
            assert scores_eos[lab] == pytest.approx(
                naive_logprob(model, tokenizer, p, lab, eos=True)[0], abs=1e-4
            )
            assert scores_eos[lab] < scores[lab]  # one more (log-prob < 0) token


def test_chat_prompts_match_naive(model, tokenizer):
    got = score_label_logprobs(model, tokenizer, CHAT_PROMPTS, MULTI + EMOTIONS, batch_size=4, progress=False)
    for p, scores in zip(CHAT_PROMPTS, got, strict=True):
        for lab in MULTI + EMOTIONS:
            assert scores[lab] == pytest.approx(naive_logprob(model, tokenizer, p, lab)[0], abs=1e-4)


def test_absolute_position_model_padding_changes_nothing(tokenizer):
    """Llama's rotary embeddings are relative, so a uniform position offset from left padding cannot show up there.
    GPT-2 has absolute positions: scores must still equal the naive ones, and a negative control shows that left
    padding WITHOUT explicit position_ids moves the log-probs far beyond the 1e-4 tolerance."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2
        )
    ).eval()
    for share_prefix in (True, False):
        got = score_label_logprobs(
            gpt2,
            tokenizer,
            PROMPTS,
            EMOTIONS + MULTI,
            batch_size=4,
            share_prefix=share_prefix,
            progress=False,
        )
        for p, scores in zip(PROMPTS, got, strict=True):
            for lab in EMOTIONS + MULTI:
                assert scores[lab] == pytest.approx(naive_logprob(gpt2, tokenizer, p, lab)[0], abs=1e-4)

    short, long = encode_prompt(tokenizer, PROMPTS[1]), encode_prompt(tokenizer, PROMPTS[0])
    pad = len(long) - len(short)
    ids = torch.tensor([[tokenizer.pad_token_id] * pad + short])
    mask = torch.tensor([[0] * pad + [1] * len(short)])
    with torch.no_grad():
        unpadded = torch.log_softmax(gpt2(input_ids=torch.tensor([short])).logits[0, -1], -1)
        no_positions = torch.log_softmax(gpt2(input_ids=ids, attention_mask=mask).logits[0, -1], -1)
    assert (unpadded - no_positions).abs().max().item() > 1e-2


def test_peft_wrapped_model(tokenizer):
    from peft import LoraConfig, get_peft_model

    base = _tiny_llama(len(tokenizer), seed=1)
    before = score_label_logprobs(base, tokenizer, PROMPTS, MULTI, progress=False)
    # init_lora_weights=False: random B, so the adapter really changes the outputs.
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, lora)
    after = score_label_logprobs(peft_model, tokenizer, PROMPTS, MULTI, progress=False)
    for p, b, a in zip(PROMPTS, before, after, strict=True):
        for lab in MULTI:
            assert a[lab] == pytest.approx(naive_logprob(peft_model, tokenizer, p, lab)[0], abs=1e-4)
        assert max(abs(a[lab] - b[lab]) for lab in MULTI) > 1e-3
    # The shared-prefix path through the adapter, and with the adapter switched off (how eval scores "base").
    grouped = score_label_logprobs(
        peft_model, tokenizer, GROUPED_PROMPTS, MULTI, batch_size=2, progress=False
    )
    with peft_model.disable_adapter():
        grouped_base = score_label_logprobs(
            peft_model, tokenizer, GROUPED_PROMPTS, MULTI, batch_size=2, progress=False
        )
    fresh = _tiny_llama(len(tokenizer), seed=1)
    for p, g, gb in zip(GROUPED_PROMPTS, grouped, grouped_base, strict=True):
        for lab in MULTI:
            assert g[lab] == pytest.approx(naive_logprob(peft_model, tokenizer, p, lab)[0], abs=1e-4)
            assert gb[lab] == pytest.approx(naive_logprob(fresh, tokenizer, p, lab)[0], abs=1e-4)


def test_score_restores_training_mode_and_validates(model, tokenizer):
    model.train()
    score_label_logprobs(model, tokenizer, PROMPTS[:1], EMOTIONS, progress=False)
    assert model.training
    model.eval()
    with pytest.raises(ValueError, match="normalize must be one of"):
        score_label_logprobs(model, tokenizer, PROMPTS, EMOTIONS, normalize="max", progress=False)
    with pytest.raises(ValueError, match="label_sets has 2 lists for 3 prompts"):
        score_label_logprobs(model, tokenizer, PROMPTS, [EMOTIONS, EMOTIONS], progress=False)
    with pytest.raises(ValueError, match=r"label_sets\[1\] has duplicate labels"):
        score_label_logprobs(model, tokenizer, PROMPTS[:2], [EMOTIONS, ["joy", "joy"]], progress=False)
    with pytest.raises(ValueError, match=r"label_sets\[0\] must be a non-empty list"):
        score_label_logprobs(model, tokenizer, PROMPTS[:1], [[]], progress=False)


def test_label_probabilities_hand_worked():
    probs = label_probabilities({"a": math.log(0.2), "b": math.log(0.6)})
    assert list(probs) == ["a", "b"]
    assert probs["a"] == pytest.approx(0.25) and probs["b"] == pytest.approx(0.75)
    # Shift invariance: very negative log-probs (long labels) do not underflow to 0/0.
    probs = label_probabilities({"x": -1000.0, "y": -1000.0 - math.log(3)})
    assert probs["x"] == pytest.approx(0.75)
    assert label_probabilities({"x": -math.inf, "y": -2.0}) == {"x": 0.0, "y": 1.0}
    with pytest.raises(ValueError, match="at least one label"):
        label_probabilities({})
    with pytest.raises(ValueError, match="cannot be normalised"):
        label_probabilities({"x": math.nan})


# ---------------------------------------------------------------- generate mode


def naive_greedy(model, tokenizer, prompt, max_new_tokens: int) -> str:
    ids = encode_prompt(tokenizer, prompt)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == tokenizer.eos_token_id:
                break
            new.append(nxt)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_generate_matches_unpadded_greedy(model, tokenizer):
    got = generate_answers(
        model, tokenizer, PROMPTS + CHAT_PROMPTS, max_new_tokens=6, batch_size=5, progress=False
    )
    want = [naive_greedy(model, tokenizer, p, 6) for p in PROMPTS + CHAT_PROMPTS]
    assert got == want
    assert all(isinstance(a, str) and a for a in got)  # this random model does not stop at once


def test_generate_empty_output_is_empty_string(tokenizer):
    eos_model = _tiny_llama(len(tokenizer), seed=2)
    # Force EOS as the first (and every) token: an lm_head with a huge bias on EOS.
    old = eos_model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = 1e4
    eos_model.lm_head = head
    got = generate_answers(eos_model, tokenizer, PROMPTS + CHAT_PROMPTS, batch_size=2, progress=False)
    assert got == [""] * 5
    assert parse_answer(got[0], EMOTIONS) is None


# ---------------------------------------------------------------- parse_answer

OFFENSIVE = ["not offensive", "offensive"]
EMOJI = ["camera", "camera with flash", "Christmas tree"]


@pytest.mark.parametrize(
    ("raw", "labels", "want"),
    [
        (" joy", EMOTIONS, "joy"),  # exact after stripping
        ("Joy", EMOTIONS, "joy"),  # case
        ("JOY.", EMOTIONS, "joy"),  # case + trailing punctuation
        ("offensive.", OFFENSIVE, "offensive"),
        ("'not offensive'!", OFFENSIVE, "not offensive"),  # quotes and punctuation
        ("Not  Offensive", OFFENSIVE, "not offensive"),  # multi-word label, extra space
        ("joy\nInput: another tweet\nOutput: anger", EMOTIONS, "joy"),  # first line wins
        ("\n\n sadness \nmore", EMOTIONS, "sadness"),  # leading blank lines skipped
        ("Instruction: classify\nInput: I love it\nOutput: optimism\n", EMOTIONS, "optimism"),  # prompt echo
        ("output: anger", EMOTIONS, "anger"),
        ("christmas tree", EMOJI, "Christmas tree"),  # canonical spelling returned
        ("joyful", EMOTIONS, None),  # no prefix match in strict mode
        ("offensive language", OFFENSIVE, None),
        ("not", OFFENSIVE, None),
        ("", EMOTIONS, None),
        ("I think it is joy", EMOTIONS, None),
        ("Output:", EMOTIONS, None),
    ],
)
def test_parse_answer_strict(raw, labels, want):
    assert parse_answer(raw, labels) == want


@pytest.mark.parametrize(
    ("raw", "labels", "want"),
    [
        ("offensive. The tweet insults someone", OFFENSIVE, "offensive"),
        (
            "not offensive, it is a joke",
            OFFENSIVE,
            "not offensive",
        ),  # longest label that the answer starts with
        ("Camera with flash!! nice", EMOJI, "camera with flash"),
        ("camera, I guess", EMOJI, "camera"),
        ("joy and optimism", EMOTIONS, "joy"),
        ("joyful", EMOTIONS, None),  # word boundary: "joyful" is not "joy"
        ("not", OFFENSIVE, None),  # the answer must start with the label, not the other way round
        ("it is offensive", OFFENSIVE, None),
        ("Output: sadness, clearly", EMOTIONS, "sadness"),
    ],
)
def test_parse_answer_lenient(raw, labels, want):
    assert parse_answer(raw, labels, lenient=True) == want


def test_parse_answer_validates_labels():
    with pytest.raises(ValueError, match="non-empty label list"):
        parse_answer("joy", [])
    with pytest.raises(ValueError, match="identical once lower-cased"):
        parse_answer("joy", ["Joy", "joy"])


# ---------------------------------------------------------------- the project's tiny-random preset


def test_project_tiny_random_preset():
    """The preset the notebooks' smoke runs use (models.load_model): score mode equals the naive reference for
    paper and chat prompts (its chat template ends turns with EOS), and generate/parse run end to end."""
    from socialite_utils.models import load_model

    model, tok = load_model("tiny-random")
    prompts = PROMPTS + CHAT_PROMPTS
    for eos in (False, True):
        got = score_label_logprobs(
            model, tok, prompts, MULTI + EMOTIONS, batch_size=3, eos=eos, progress=False
        )
        for p, scores in zip(prompts, got, strict=True):
            for lab in MULTI + EMOTIONS:
                assert scores[lab] == pytest.approx(naive_logprob(model, tok, p, lab, eos=eos)[0], abs=1e-4)
    answers = generate_answers(model, tok, prompts, max_new_tokens=4, batch_size=2, progress=False)
    assert answers == [naive_greedy(model, tok, p, 4) for p in prompts]
