"""The one tokenizer of the kit's tiny random models (the ``tiny-random`` Llama of models.py and the ``tiny`` encoder
baseline of encoder_baseline.py): a byte-level BPE trained by ``tokenizers`` on a fixed corpus and committed as
package data, ``socialite_utils/assets/tiny_tokenizer.json``.

The corpus is the texts and labels of the bundled data sample (``sample_data/``) plus :data:`PROMPT_CORPUS`, the
prompt frames and label words, so every text is spellable (256 byte tokens) and common words are one token.
Special tokens ``<s> </s> <pad> <unk>`` have ids 0-3. The file has no post-processor: nothing is added to a text
behind the caller's back (the Llama's chat template adds EOS; the encoder adds its own ``<s> a </s> b </s>``).

Regenerate it (deterministic: the same corpus gives the same bytes; tests/test_tiny_tokenizer.py checks) after
changing the corpus or the settings::

    python -m socialite_utils.tiny_tokenizer
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

TINY_TOKENIZER_FILE = Path(__file__).parent / "assets" / "tiny_tokenizer.json"
TINY_SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<unk>"]
TINY_VOCAB_SIZE = 2048

# The prompt frames of prompts.py, the chat roles and the label words of the bundled tasks, so the prompts the
# tests build are short in tokens.
PROMPT_CORPUS = [
    "Instruction: Which emotion does the text express? Answer with one word.",
    "Input: I can't believe how good this day has been, thank you all!",
    "Output: joy",
    "Output: anger",
    "Output: sadness",
    "Output: optimism",
    "Output: positive",
    "Output: negative",
    "Output: neutral",
    "Input: this is the worst service I have ever had, never again.",
    "Is the text offensive? Output: offensive",
    "Is the text sarcastic? Output: not sarcastic",
    "Is this headline clickbait? Output: not clickbait",
    "Stance: favor against none",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "user: hello there\nassistant: hi, how can I help you today?",
    "<|user|>\nWhich emotion? I love it</s><|assistant|>\njoy</s>",
    "### Instruction:\n### Input:\n### Response:",
]


def tiny_tokenizer_corpus() -> list[str]:
    """The training texts, in a fixed order: the sample's texts and labels (sorted files), then the prompt corpus."""
    texts: list[str] = []
    for path in sorted((Path(__file__).parent / "sample_data").glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [str(row["text"]), str(row["label"])]
    return texts + PROMPT_CORPUS


def train_tiny_tokenizer() -> Any:
    """Train the byte-level BPE on :func:`tiny_tokenizer_corpus`; returns a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_tokenizer_corpus(), trainer=trainer)
    return tok


def tiny_tokenizer_json() -> str:
    """The file's text as :func:`train_tiny_tokenizer` makes it (pretty JSON, newline at the end)."""
    return train_tiny_tokenizer().to_str(pretty=True) + "\n"


def write_tiny_tokenizer(path: str | Path = TINY_TOKENIZER_FILE) -> Path:
    """Retrain and write the tokenizer file (the committed one by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tiny_tokenizer_json(), encoding="utf-8")
    return path


@lru_cache(maxsize=1)
def _committed_json() -> str:
    if not TINY_TOKENIZER_FILE.is_file():
        raise FileNotFoundError(
            f"{TINY_TOKENIZER_FILE} is missing (package data of socialite_utils); "
            "regenerate it with `python -m socialite_utils.tiny_tokenizer`"
        )
    return TINY_TOKENIZER_FILE.read_text(encoding="utf-8")


def load_tiny_tokenizer_file() -> Any:
    """A fresh ``tokenizers.Tokenizer`` from the committed file (callers may set a post-processor on it)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_committed_json())


if __name__ == "__main__":
    out = write_tiny_tokenizer(sys.argv[1] if len(sys.argv) > 1 else TINY_TOKENIZER_FILE)
    print(f"wrote {out}")
