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


def test_byte_pair_merges_join_the_most_frequent_pair_first_and_stop_below_two():
    from seqmodels.subwords import learn_bpe

    units = learn_bpe({"lower": 2, "lowest": 6, "newer": 3, "wider": 1}, merges=100)
    chars = sorted(set("lowernewestwider"))
    assert units[:len(chars)] == chars
    merged = units[len(chars):]
    assert merged[:2] == ["we", "lo"]  # "we" 11 times; then "lo" and "o we" 8 each: equals go by pair order
    assert "lowest" in merged and "wider" not in merged  # wider occurs once: its pairs never reach two


def test_bpe_learning_matches_a_plain_recount_after_every_merge():
    """The incremental counts give the merges of the textbook loop that recounts all pairs each time."""
    from collections import Counter

    from seqmodels.kinds.translate.text import tokenize
    from seqmodels.subwords import learn_bpe

    text = "les chats mangent les souris ; nous mangeons , vous mangez , ils mangeaient des chatons " * 3
    counts = Counter(tokenize(text + "les chiens chantent"))
    words = {w: list(w) for w in counts}
    expected = []
    for _ in range(25):
        pairs = Counter()
        for w, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[w]
        best = min(pairs.items(), key=lambda item: (-item[1], item[0]), default=None)
        if best is None or best[1] < 2:
            break
        expected.append(best[0][0] + best[0][1])
        for w, symbols in words.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i:i + 2] == list(best[0]):
                    out.append(expected[-1]); i += 2
                else:
                    out.append(symbols[i]); i += 1
            words[w] = out
    assert learn_bpe(counts, 25)[len(set("".join(counts))):] == expected


def test_subword_codec_splits_rare_words_into_known_pieces_and_joins_them_back(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from seqmodels.kinds.translate.stages import TextCodec, TextConfig, fit_text

    targets = ["Nous mangeons.", "Nous chantons.", "Ils mangent.", "Ils chantent.", "Vous mangez."] * 4
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": ["x"] * len(targets), "target": targets}), path)
    fit_text(str(path), str(tmp_path / "text"), TextConfig(target_level="bpe", bpe_merges=30, min_freq=5))
    codec = TextCodec.load(tmp_path / "text")
    pieces = codec.tokens("Vous chantez.", "target")  # a word never seen, made of seen pieces
    assert "<unk>" not in [codec.target.tokens[i] for i in codec.targets(["Vous chantez."])[0]]
    assert len(pieces) > 3 and "".join(pieces) == "▁Vous▁chantez."  # words: ▁Vous ▁chantez .
    assert codec.text([2, *codec.targets(["Vous chantez."])[0], 3]) == "Vous chantez."
