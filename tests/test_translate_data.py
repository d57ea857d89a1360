"""Sentence pairs for translation: the Tatoeba reader, named columns, and the source-disjoint split."""

from __future__ import annotations

import numpy as np
import pytest

from seqmodels.kinds.translate.readers import read_pairs
from seqmodels.readers import ReaderError
from seqmodels.split import SplitConfig, grouped_split


def test_tatoeba_lines_with_and_without_attribution(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\nHi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n\n"
                    "Run!\tCours !\n", encoding="utf-8")
    table = read_pairs(path, "tatoeba")
    assert table["text"].tolist() == ["Go.", "Hi.", "Run!"]
    assert table["target"].tolist() == ["Va !", "Salut !", "Cours !"]
    assert table["row"].tolist() == [0, 1, 3]  # the line a pair came from (blank lines are not pairs)


def test_a_line_without_a_tab_is_named(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\nHi. Salut !\n", encoding="utf-8")
    with pytest.raises(ReaderError, match=r"fra.txt:2: expected 'source<TAB>target'.*found 1 field"):
        read_pairs(path, "tatoeba")


def test_an_empty_side_is_named_not_dropped(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\nHi.\t \n", encoding="utf-8")
    with pytest.raises(ReaderError, match=r"line\(s\) 2"):
        read_pairs(path, "tatoeba")


def test_tables_read_the_named_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("en,fr,id\nI am cold.,J'ai froid.,1\nThank you.,Merci.,2\n", encoding="utf-8")
    table = read_pairs(path, "csv", source_col="en", target_col="fr")
    assert table["text"].tolist() == ["I am cold.", "Thank you."] and table["target"].tolist() == ["J'ai froid.", "Merci."]
    with pytest.raises(ReaderError, match="de"):
        read_pairs(path, "csv", source_col="en", target_col="de")


def test_the_grouped_split_keeps_every_source_in_one_part():
    rng = np.random.default_rng(0)
    sources = [f"sentence {i}" for i in rng.integers(0, 300, size=2000)]  # many sources repeat
    train, val, test = grouped_split(sources, SplitConfig(train=0.8, val=0.1, test=0.1, seed=3))
    parts = [{sources[i] for i in rows} for rows in (train, val, test)]
    assert not parts[0] & parts[2] and not parts[0] & parts[1] and not parts[1] & parts[2]
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(2000))
    assert 0.7 < len(parts[0]) / len(set(sources)) < 0.9
    again = grouped_split(sources, SplitConfig(train=0.8, val=0.1, test=0.1, seed=3))
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))


@pytest.mark.parametrize("text", ["J'ai froid.", "Where is the station?", "Il a 3,5 ans ... vraiment !", "你好。"])
def test_word_tokens_give_the_sentence_back(text):
    from seqmodels.kinds.translate.text import detokenize, tokenize

    assert detokenize(tokenize(text)) == text
    assert detokenize(tokenize(text, "char"), "char") == text


def test_word_tokens_mark_what_follows_a_space():
    from seqmodels.kinds.translate.text import tokenize

    assert tokenize("J'ai froid.") == ["▁J", "'", "ai", "▁froid", "."]


def test_vocabularies_start_with_pad_unk_start_end_and_decode_without_specials():
    from seqmodels.kinds.translate.text import decode, encode, fit_vocabulary, tokenize

    vocab = fit_vocabulary([tokenize("Va !"), tokenize("Cours !")], "word")
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"] and vocab.tokens[4] == "▁!"
    ids = [2, *encode(vocab, tokenize("Va ! Zut")), 3, 0]
    assert ids[3] == 1 and decode(vocab, ids) == "Va !<unk>"  # an unknown word shows, glued as "▁" was lost


def test_pair_batches_pad_and_cover_every_pair_once_per_epoch():
    from seqmodels.kinds.translate.batches import PairLoader

    sources = [[5] * n for n in (3, 1, 2, 5, 4, 2)]
    targets = [[6] * n for n in (2, 2, 1, 3, 1, 4)]
    loader = PairLoader(sources, targets, 4, shuffle=True, seed=1)
    seen = []
    for batch in loader:
        assert batch["tgt_in"][:, 0].tolist() == [2] * len(batch["src"])  # <s> first
        for row in range(len(batch["src"])):
            n_src, n_tgt = int(batch["src_lengths"][row]), int((batch["tgt_out"][row] > 0).sum())
            assert batch["src"][row, n_src:].eq(0).all() and batch["tgt_out"][row, n_tgt - 1] == 3  # </s> last
            seen.append((n_src, n_tgt - 1))
    assert sorted(seen) == sorted(zip((3, 1, 2, 5, 4, 2), (2, 2, 1, 3, 1, 4))) and len(loader) == 2
