"""Data, vocabulary and untrained architecture of the bundled sentiment model (issue 15).

The model is trained in Rust with tch (`examples/train_text.rs`); this script only prepares
what that trainer and the tests read, from the source distribution of the `vaderSentiment`
package on PyPI (version 3.3.2, sha256 checked below). That archive carries, besides the VADER
lexicon, the data set of the VADER paper (Hutto & Gilbert, ICWSM 2014) in
`additional_resources/hutto_ICWSM_2014.tar.gz`:

- `movieReviewSnippets_GroundTruth.txt`: 10,605 sentences from movie reviews (the Pang & Lee
  sentence-polarity snippets), each with the mean of about 20 human sentiment ratings on a
  -4..4 scale. These are the labelled text: label 1 (positive) when the mean rating is >= 0.5,
  0 (negative) when it is <= -0.5; the sentences the raters judged near-neutral
  (|mean| < 0.5, about 5 %) are left out.
- `vaderSentiment/vader_lexicon.txt`: about 7,500 tokens, each with the mean rating of ten
  human raters on the same scale. Not used for training; the tests check the sign of token
  attributions against it.

Tokenizer (the CLI's `attrib_cli::text::tokenize` is the same rule, and a test checks that
both give the same ids on every held-out sentence): maximal runs of ASCII letters, digits and
apostrophes; each run lower-cased (ASCII only) and stripped of leading and trailing
apostrophes; empty runs dropped. Every other character separates tokens.

Vocabulary: `<pad>` = 0, `<unk>` = 1, then every token seen at least MIN_COUNT times in the
training split, most frequent first (ties alphabetical).

Writes (committed, small):
- examples/data/sentiment_vocab.json   token -> id
- examples/data/sentiment_lexicon.json  VADER mean rating of each vocabulary token VADER rates
- examples/data/sentiment_test.tsv      held-out split: label, mean rating, sentence
- examples/data/training/sentiment_test_ids.npy  int16 [N, L] token ids of that split, 0-padded
- examples/data/sentiment_baseline.json  the baseline: logistic regression (scikit-learn,
  L2, C chosen on a validation split = the last fifth of the training split) on binary
  bag-of-words over the same vocabulary and tokens, refitted on the whole training split, and
  its held-out accuracy
and, not committed (the trainer's input, rebuilt by `make bundled-models`):
- target/text-training/sentiment_train_ids.npy (int64 [N, L]), sentiment_train_y.npy,
  sentiment_cnn_init.pt (the architecture, untrained, seeded, from `torch.jit.script`).

Run from the repository root:
    .venv/bin/python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d target/vader
    .venv/bin/python examples/python/export_text.py target/vader/vaderSentiment-3.3.2.tar.gz
Deterministic (fixed seed): the outputs are the same on every run.
"""
import collections
import hashlib
import io
import json
import pathlib
import re
import sys
import tarfile

import numpy as np
import torch
import torch.nn as nn

DATA = pathlib.Path("examples/data")
TRAINING = DATA / "training"
WORK = pathlib.Path("target/text-training")
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SEED = 0
MIN_COUNT = 3
NEUTRAL = 0.5
EMBED_DIM = 32
CHANNELS = 32

TOKEN = re.compile(r"[A-Za-z0-9']+")


def tokenize(text):
    """The documented tokenizer (see the module doc)."""
    out = []
    for run in TOKEN.findall(text):
        t = run.lower().strip("'")
        if t:
            out.append(t)
    return out


class SentimentCNN(nn.Module):
    """Token ids [N, L] (0 = padding) -> 2 logits (0 = negative, 1 = positive).

    Embedding, a width-3 convolution over the sequence, ReLU, the mean over the non-padding
    positions, dropout, linear. The padding mask comes from the ids, so attributing at the
    `embedding` layer (whose output a layer method replaces) keeps the same mask.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBED_DIM, padding_idx=0)
        self.conv = nn.Conv1d(EMBED_DIM, CHANNELS, 3, padding=1)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(CHANNELS, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).to(torch.float32).unsqueeze(2)  # [N, L, 1]
        e = self.embedding(ids)  # [N, L, D]
        h = torch.relu(self.conv(e.transpose(1, 2))).transpose(1, 2)  # [N, L, C]
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.fc(self.dropout(pooled))


def read_sdist(path):
    raw = pathlib.Path(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"error: {path} has sha256 {digest}, expected vaderSentiment 3.3.2's {SDIST_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(raw)) as outer:
        lexicon = outer.extractfile("vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt").read()
        inner = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        snippets = t.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt").read()
    return snippets.decode("utf-8"), lexicon.decode("utf-8")


def sentences(text):
    """(label, rating, sentence) for every sentence not judged near-neutral."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        _, rating, sentence = line.split("\t")
        r = float(rating)
        if abs(r) >= NEUTRAL:
            out.append((int(r > 0), r, " ".join(sentence.split())))
    return out


def ids(rows, vocab, dtype):
    width = max(len(tokenize(s)) for _, _, s in rows)
    x = np.zeros((len(rows), width), dtype=dtype)
    for i, (_, _, s) in enumerate(rows):
        z = [vocab.get(t, 1) for t in tokenize(s)]
        x[i, : len(z)] = z
    return x


def bag_of_words(rows, vocab):
    """Binary bag-of-words over the vocabulary (unknown tokens share `<unk>`), sparse."""
    from scipy.sparse import csr_matrix

    indptr, indices = [0], []
    for _, _, s in rows:
        present = sorted({vocab.get(t, 1) for t in tokenize(s)})
        indices.extend(present)
        indptr.append(len(indices))
    return csr_matrix((np.ones(len(indices), dtype=np.float64), indices, indptr), shape=(len(rows), len(vocab)))


def baseline(train, test, vocab):
    """Logistic regression on bag-of-words: C chosen on the last fifth of the training split."""
    from sklearn.linear_model import LogisticRegression

    y = np.array([r[0] for r in train])
    x = bag_of_words(train, vocab)
    cut = len(train) * 4 // 5
    scores = {}
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):
        m = LogisticRegression(C=c, max_iter=2000).fit(x[:cut], y[:cut])
        scores[c] = float((m.predict(x[cut:]) == y[cut:]).mean())
    best = max(scores, key=lambda c: (scores[c], -c))
    m = LogisticRegression(C=best, max_iter=2000).fit(x, y)
    yt = np.array([r[0] for r in test])
    correct = int((m.predict(bag_of_words(test, vocab)) == yt).sum())
    return {
        "model": "logistic regression (scikit-learn, L2) on binary bag-of-words, same vocabulary",
        "C": best,
        "validation_accuracy": scores,
        "test_correct": correct,
        "test_size": len(test),
        "test_accuracy": correct / len(test),
    }


def main():
    sdist = sys.argv[1] if len(sys.argv) > 1 else "target/vader/vaderSentiment-3.3.2.tar.gz"
    snippets, lexicon_text = read_sdist(sdist)
    rows = sentences(snippets)
    labels = np.array([y for y, _, _ in rows])
    # A seeded, stratified 80/20 split (numpy only).
    rng = np.random.default_rng(SEED)
    test_idx = []
    for c in (0, 1):
        members = np.flatnonzero(labels == c)
        test_idx.extend(rng.permutation(members)[: len(members) // 5].tolist())
    test_set = set(test_idx)
    train = [rows[i] for i in range(len(rows)) if i not in test_set]
    test = [rows[i] for i in sorted(test_idx)]
    train = [train[i] for i in rng.permutation(len(train))]

    counts = collections.Counter(t for _, _, s in train for t in tokenize(s))
    vocab = {"<pad>": 0, "<unk>": 1}
    for token, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= MIN_COUNT:
            vocab[token] = len(vocab)

    lexicon = {}
    for line in lexicon_text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0] in vocab:
            lexicon[parts[0]] = float(parts[1])

    TRAINING.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    (DATA / "sentiment_vocab.json").write_text(json.dumps(vocab, indent=0, ensure_ascii=True) + "\n")
    (DATA / "sentiment_lexicon.json").write_text(
        json.dumps(dict(sorted(lexicon.items())), indent=0, ensure_ascii=True) + "\n"
    )
    with open(DATA / "sentiment_test.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("label\trating\tsentence\n")
        for y, r, s in test:
            f.write(f"{y}\t{r:.4f}\t{s}\n")
    np.save(TRAINING / "sentiment_test_ids.npy", ids(test, vocab, np.int16))
    np.save(WORK / "sentiment_train_ids.npy", ids(train, vocab, np.int64))
    np.save(WORK / "sentiment_train_y.npy", np.array([y for y, _, _ in train], dtype=np.int64))
    base = baseline(train, test, vocab)
    (DATA / "sentiment_baseline.json").write_text(json.dumps(base, indent=1) + "\n")
    torch.manual_seed(SEED)
    torch.jit.script(SentimentCNN(len(vocab))).save(str(WORK / "sentiment_cnn_init.pt"))
    print(
        f"sentiment: {len(train)} training, {len(test)} test sentences "
        f"({int(labels.sum())} positive of {len(rows)}; {len(snippets.splitlines())} rated), "
        f"vocabulary {len(vocab)}, {len(lexicon)} of them in the VADER lexicon; baseline (bag-of-words "
        f"logistic regression, C={base['C']}): {base['test_correct']}/{base['test_size']} held out"
    )


if __name__ == "__main__":
    main()
