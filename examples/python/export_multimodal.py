"""Pairs and untrained architecture of the bundled image + word model (issue 15).

No public data set pairs images with text that a package here ships, so the pairs are a
documented construction from two real, human-labelled sources already in the repository:

- images: scikit-learn's handwritten digits, the bundled digit CNN's split
  (`examples/data/training/digits_{train,test}_x.npy`, 8x8 uint8; upsampled to 16x16 by the
  trainer and the tests, as for the digit CNN);
- words: the tokens of `examples/data/sentiment_lexicon.json` (VADER lexicon ratings, ten
  human raters each, from vaderSentiment 3.3.2) rated at least 1.5 in absolute value.

Each pair is (digit image, one word); its label is 1 ("agree") when the digit is high (5..9) and
the word positive, or the digit low (0..4) and the word negative, else 0. Neither part alone
tells the label (each alone is right half of the time), so the model must use both.
Training pairs: every training image with four words drawn at random; held-out pairs: every
test image with two words (seeded). Words are shared between the splits (the images are not).

Writes (committed, small): examples/data/multimodal_vocab.json (token -> id, <pad> = 0,
<unk> = 1), examples/data/multimodal_test_pairs.npy (int64 [N, 3]: row of the digit test split,
word id, label); and, not committed: target/multimodal-training/ (training pairs and
`digit_word_init.pt`, the architecture, untrained, from `torch.jit.script`).

Run from the repository root:  .venv/bin/python examples/python/export_multimodal.py
Then train:  cargo run --release -p attrib-examples --example train_multimodal
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn

DATA = pathlib.Path("examples/data")
WORK = pathlib.Path("target/multimodal-training")
SEED = 0
MIN_RATING = 1.5
TRAIN_WORDS_PER_IMAGE = 4
TEST_WORDS_PER_IMAGE = 2


class DigitWord(nn.Module):
    """(16x16 grey digit [N, 1, 16, 16], word ids [N, L]) -> 2 logits (0 = disagree, 1 = agree)."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.image_fc = nn.Linear(16 * 4 * 4, 16)
        self.embedding = nn.Embedding(vocab_size, 16, padding_idx=0)
        self.fusion = nn.Linear(32, 32)
        self.out = nn.Linear(32, 2)

    def forward(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(image)))
        x = self.pool(torch.relu(self.conv2(x)))
        img = torch.relu(self.image_fc(x.flatten(1)))  # [N, 16]
        mask = (ids != 0).to(torch.float32).unsqueeze(2)
        words = (self.embedding(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [N, 16]
        return self.out(torch.relu(self.fusion(torch.cat([img, words], 1))))


def pairs(digit_labels, words, ratings, per_image, rng):
    rows = []
    for i, d in enumerate(digit_labels):
        for w in rng.choice(len(words), size=per_image, replace=False):
            label = int((d >= 5) == (ratings[w] > 0))
            rows.append((i, w + 2, label))
    return np.array(rows, dtype=np.int64)


def main():
    lexicon = json.loads((DATA / "sentiment_lexicon.json").read_text())
    chosen = sorted(t for t, r in lexicon.items() if abs(r) >= MIN_RATING)
    ratings = np.array([lexicon[t] for t in chosen])
    vocab = {"<pad>": 0, "<unk>": 1}
    for t in chosen:
        vocab[t] = len(vocab)
    rng = np.random.default_rng(SEED)
    train_y = np.load(DATA / "training/digits_train_y.npy")
    test_y = np.load(DATA / "training/digits_test_y.npy")
    train = pairs(train_y, chosen, ratings, TRAIN_WORDS_PER_IMAGE, rng)
    test = pairs(test_y, chosen, ratings, TEST_WORDS_PER_IMAGE, rng)
    WORK.mkdir(parents=True, exist_ok=True)
    (DATA / "multimodal_vocab.json").write_text(json.dumps(vocab, indent=0) + "\n")
    np.save(DATA / "multimodal_test_pairs.npy", test)
    np.save(WORK / "train_pairs.npy", train)
    torch.manual_seed(SEED)
    torch.jit.script(DigitWord(len(vocab))).save(str(WORK / "digit_word_init.pt"))
    print(
        f"multimodal: {len(chosen)} words ({int((ratings > 0).sum())} positive), {len(train)} training pairs, "
        f"{len(test)} held-out pairs ({int(test[:, 2].sum())} agree)"
    )


if __name__ == "__main__":
    main()
