"""Each training process's share of the batches (``shard``), without starting any process: same number of
batches on every rank, the epoch's rows covered, length bucketing kept, a new order every epoch, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from seqmodels.batching import BatchLoader, SequenceData, bucketed_batches
from seqmodels.distributed import LaunchConfig, process_count, rank_batch_count, rank_batches


def _data(n: int = 1000, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SequenceData(ids=rng.integers(2, 100, size=offsets[-1]), offsets=offsets, targets=rng.integers(0, 3, n))


def _shares(loader: BatchLoader, world: int, epoch: int, pad: bool = True) -> list[list[np.ndarray]]:
    shares = []
    for rank in range(world):
        part = loader.shard(rank, world, pad)
        part.set_epoch(epoch)
        shares.append(part.batch_indices())
        assert len(shares[-1]) == len(part)  # __len__ says what an epoch yields
    return shares


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("exact_length", [False, True])
def test_every_rank_gets_the_same_number_of_batches_covering_the_epoch(world, exact_length):
    loader = BatchLoader(_data(), batch_size=32, shuffle=True, seed=7, exact_length=exact_length)
    shares = _shares(loader, world, epoch=1)
    assert len({len(share) for share in shares}) == 1
    rows = np.concatenate([b for share in shares for b in share])
    assert set(rows.tolist()) == set(range(1000))  # every row of the epoch is trained on
    whole = len(bucketed_batches(loader.data.lengths, 32, True, 8, exact_length=exact_length))
    assert sum(map(len, shares)) - whole < world  # padding repeats fewer batches than there are ranks


def test_shares_are_disjoint_when_nothing_is_padded():
    loader = BatchLoader(_data(), batch_size=50, shuffle=True, seed=3)  # 20 batches: 10 a rank
    first, second = _shares(loader, 2, epoch=4)
    seen_first = {int(i) for b in first for i in b}
    assert seen_first.isdisjoint(int(i) for b in second for i in b)
    assert len(seen_first) + sum(map(len, second)) == 1000


def test_validation_shares_score_every_batch_once():
    loader = BatchLoader(_data(), batch_size=64)  # unshuffled, 16 batches
    shares = _shares(loader, 3, epoch=0, pad=False)
    assert [len(s) for s in shares] == [6, 5, 5]
    rows = np.concatenate([b for share in shares for b in share])
    assert sorted(rows.tolist()) == list(range(1000))


def test_bucketing_is_kept():
    """A rank's batches are batches of the single-process list: rows of similar length together."""
    data = _data()
    loader = BatchLoader(data, batch_size=32, shuffle=True, seed=11)
    loader.set_epoch(2)
    whole = {tuple(b.tolist()) for b in loader.batch_indices()}
    for share in _shares(loader, 2, epoch=2):
        assert all(tuple(b.tolist()) in whole for b in share)
        spreads = [int(np.ptp(data.lengths[b])) for b in share]
        assert np.median(spreads) <= 3  # lengths 1..59 at random: unbucketed batches would spread ~55


def test_a_new_order_every_epoch_and_the_same_order_for_the_same_epoch():
    loader = BatchLoader(_data(), batch_size=32, shuffle=True, seed=5)
    one, again, other = _shares(loader, 2, 1), _shares(loader, 2, 1), _shares(loader, 2, 2)
    assert all(np.array_equal(a, b) for a, b in zip(one[0], again[0]))  # every rank computes the same list
    assert not all(np.array_equal(a, b) for a, b in zip(one[0], other[0]))


def test_fewer_batches_than_ranks_still_gives_every_rank_one():
    assert rank_batches(["a"], 1, 2) == ["a"]
    assert rank_batches(["a", "b", "c"], 1, 2) == ["b", "a"]
    assert rank_batches(["a", "b", "c"], 1, 2, pad=False) == ["b"]
    assert [rank_batch_count(3, r, 2, pad) for r in (0, 1) for pad in (True, False)] == [2, 2, 2, 1]
    assert rank_batches(["a", "b"], 0, 1) == ["a", "b"]


def test_pair_and_stream_loaders_split_alike():
    """Translation pairs: every rank the same number of batches over all pairs; character streams: each rank its
    own rows, the same number of chunks on every rank."""
    from seqmodels.kinds.generate.streams import StreamLoader
    from seqmodels.kinds.translate.batches import PairLoader

    sources = [[1] * (i % 17 + 1) for i in range(101)]
    pairs = PairLoader(sources, sources, 8, shuffle=True, seed=1)
    shares = [pairs.shard(r, 2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == len(list(shares[0])) == 7
    assert sum(len(b["src"]) for s in shares for b in s) >= 101

    streams = StreamLoader(np.arange(1000) % 50, streams=3, seq_len=20)
    first, second = (list(streams.shard(r, 2)) for r in range(2))
    assert len(first) == len(second) == len(streams)
    assert [b["inputs"].shape[0] for b in first + second] == [2] * (2 * len(streams))  # 3 rows padded to 4
    assert not first[0]["inputs"].equal(second[0]["inputs"])


def test_threads_per_process_and_the_torchrun_command():
    assert LaunchConfig(nproc=2).threads_per_process() >= 1
    assert LaunchConfig(nproc=64, threads=3).threads_per_process() == 3
    command = LaunchConfig(nproc=2).torchrun_command("tasks.distributed_train", ["spec.json"])
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                           "tasks.distributed_train", "spec.json"]
    with pytest.raises(ValueError, match="at least 1"):
        process_count("0")
