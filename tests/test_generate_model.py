"""The character language model: vocabulary, contiguous streams, state carried across chunks, memorisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqmodels.kinds.generate.model import CharLM, CharLMConfig
from seqmodels.kinds.generate.streams import CharVocab, StreamLoader
from seqmodels.training import Trainer, TrainerConfig, seed_everything

TEXT = "to be, or not to be: that is the question.\n"


def test_vocab_maps_unseen_characters_to_unk_and_round_trips(tmp_path):
    vocab = CharVocab.fit("abba c")
    assert vocab.chars[:3] == ["<unk>", "a", "b"]  # most frequent first
    assert vocab.encode("abz").tolist() == [1, 2, 0]
    vocab.save(tmp_path / "chars.json")
    again = CharVocab.load(tmp_path / "chars.json")
    assert again.chars == vocab.chars and again.decode(again.encode("ab c")) == "ab c"


@pytest.mark.parametrize("streams,seq_len", [(1, 5), (3, 4), (2, 100)])
def test_streams_score_every_character_but_the_first_once_and_in_order(streams, seq_len):
    ids = np.arange(50, dtype=np.int64)
    loader = StreamLoader(ids, streams, seq_len)
    batches = list(loader)
    assert [bool(b["reset"]) for b in batches] == [True] + [False] * (len(batches) - 1)
    assert len(batches) == len(loader)
    rows = torch.cat([b["targets"] for b in batches], dim=1)  # (streams, row_len)
    inputs = torch.cat([b["inputs"] for b in batches], dim=1)
    assert torch.equal(rows, inputs + 1)  # every target is the next character
    row_len = rows.shape[1]
    assert rows.reshape(-1).tolist() == list(range(1, 1 + rows.shape[0] * row_len))
    assert 49 - rows.numel() < rows.shape[0]  # at most streams - 1 characters left over at the end


def test_shifted_epochs_move_the_chunk_boundaries_reproducibly():
    loader = StreamLoader(np.arange(200, dtype=np.int64), 2, 16, shift=True, seed=3)
    firsts = []
    for epoch in (1, 2, 3, 4, 5, 1):
        loader.set_epoch(epoch)
        firsts.append(int(next(iter(loader))["inputs"][0, 0]))
    assert firsts[0] == firsts[-1] and len(set(firsts)) > 1 and all(0 <= f < 16 for f in firsts)
    assert StreamLoader(np.arange(200, dtype=np.int64), 2, 16).offset == 0  # validation: no shift


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_loss_over_a_text_is_the_same_in_one_chunk_or_many(cell):
    seed_everything(0)
    vocab = CharVocab.fit(TEXT)
    model = CharLM(CharLMConfig(vocab_size=len(vocab), cell=cell, embedding_dim=8, hidden_dim=16, dropout=0.0)).eval()
    ids = vocab.encode(TEXT * 3)

    def mean_loss(seq_len: int) -> float:
        total = count = 0.0
        with torch.no_grad():
            for batch in StreamLoader(ids, 1, seq_len):
                out = model.step(batch)
                total, count = total + float(out["loss"]) * int(out["count"]), count + int(out["count"])
        assert count == len(ids) - 1
        return total / count

    assert mean_loss(7) == pytest.approx(mean_loss(len(ids)), rel=1e-5)
    assert mean_loss(1) == pytest.approx(mean_loss(len(ids)), rel=1e-5)


def test_a_reset_batch_starts_from_zeros():
    seed_everything(0)
    model = CharLM(CharLMConfig(vocab_size=5, embedding_dim=4, hidden_dim=8, dropout=0.0)).eval()
    batch = {"inputs": torch.tensor([[1, 2, 3]]), "targets": torch.tensor([[2, 3, 4]]), "reset": torch.tensor(True)}
    with torch.no_grad():
        first = float(model.step(batch)["loss"])
        continued = float(model.step({**batch, "reset": torch.tensor(False)})["loss"])
        again = float(model.step(batch)["loss"])
    assert first == pytest.approx(again) and continued != pytest.approx(first)


def test_tied_weights_share_the_embedding():
    model = CharLM(CharLMConfig(vocab_size=7, embedding_dim=4, hidden_dim=8, tie_weights=True))
    assert model.output.weight is model.embedding.weight
    logits, _ = model(torch.tensor([[1, 2]]))
    assert logits.shape == (1, 2, 7)


def memorised_model(text: str = TEXT) -> tuple[CharLM, CharVocab]:
    """A tiny LSTM trained with the shared trainer until it knows ``text`` by heart."""
    seed_everything(0)
    vocab = CharVocab.fit(text)
    ids = vocab.encode(text * 20)
    model = CharLM(CharLMConfig(vocab_size=len(vocab), embedding_dim=16, hidden_dim=64, num_layers=1, dropout=0.0))
    config = TrainerConfig(epochs=60, lr=1e-2, patience=100, progress=False, device="cpu")
    Trainer(model, config, StreamLoader(ids, 4, 32, shift=True), StreamLoader(vocab.encode(text * 2), 1, 64)).fit()
    return model.eval(), vocab


def test_a_tiny_model_memorises_a_short_text_and_regenerates_it_greedily():
    model, vocab = memorised_model()
    ids = vocab.encode(TEXT[:3]).tolist()
    logits, state = model(torch.tensor([ids]))
    generated = []
    with torch.no_grad():
        for _ in range(len(TEXT) - 3):
            token = int(logits[0, -1].argmax())
            generated.append(token)
            logits, state = model(torch.tensor([[token]]), state)
    assert TEXT[:3] + vocab.decode(generated) == TEXT


def test_the_same_seed_trains_the_same_model_whatever_ran_before(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from seqmodels.kinds.generate.stages import fit_vocab, train_language_model

    for part, lines in (("train", TEXT.splitlines() * 20), ("val", TEXT.splitlines() * 2)):
        pq.write_table(pa.table({"text": lines}), tmp_path / f"{part}.parquet")
    splits = {part: str(tmp_path / f"{part}.parquet") for part in ("train", "val")}
    fit_vocab(splits["train"], str(tmp_path / "vocab"))
    weights = []
    for run, noise in enumerate((1, 1000)):
        torch.rand(noise)  # another caller used the global generator
        model_dir = train_language_model(splits, str(tmp_path / "vocab"), tmp_path / f"run{run}",
                                         CharLMConfig(embedding_dim=8, hidden_dim=16, num_layers=1),
                                         TrainerConfig(epochs=1, batch_size=2, progress=False, device="cpu"), seq_len=16)
        weights.append(torch.load(model_dir / "model.pt", weights_only=True))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
