"""cleanroom.distributed: the global batch kept over N ranks, deterministic shards, the launch line, the world check."""

from __future__ import annotations

import pytest

from cleanroom import distributed
from cleanroom.distributed import World
from cleanroom.errors import ConfigError
from cleanroom.training import TrainSpec


def _world(n: int, rank: int = 0) -> World:
    return World(world_size=n, rank=rank, local_rank=rank, backend="gloo" if n > 1 else None, device="cpu")


@pytest.mark.parametrize(("batch", "accum", "n", "want"), [
    (8, 1, 2, (4, 1)),   # 8 x 1 = 4 x 2 ranks x 1: accumulation 1 does not divide, the batch does
    (8, 4, 2, (8, 2)),   # 8 x 4 = 8 x 2 x 2: the accumulation divides first (per-device memory as profiled)
    (3, 4, 4, (3, 1)),   # 3 x 4 = 3 x 4 x 1
    (6, 1, 3, (2, 1)),   # 6 x 1 = 2 x 3 x 1
    (5, 7, 1, (5, 7)),   # one process: unchanged
])
def test_divide_batch_keeps_the_global_batch(batch, accum, n, want):
    spec = TrainSpec(batch_size=batch, gradient_accumulation_steps=accum)
    got = distributed.divide_batch(spec, _world(n))
    assert (got.batch_size, got.gradient_accumulation_steps) == want
    record = distributed.batch_record(got, _world(n))
    assert record["global_batch_size"] == batch * accum == got.batch_size * n * got.gradient_accumulation_steps
    assert record["world_size"] == n


def test_divide_batch_refuses_a_global_batch_it_cannot_keep():
    with pytest.raises(ConfigError, match=r"neither 3 nor 1 is divisible by 2.*multiple of 2"):
        distributed.divide_batch(TrainSpec(batch_size=3, gradient_accumulation_steps=1), _world(2))


@pytest.mark.parametrize(("n_rows", "batch", "accum", "kept"), [
    (43, 8, 1, 40),   # the tiny profile's SFT: 43 = 5 x 8 + 3; the 3 would be a step of 3 in one process
    (16, 4, 1, 16),   # a whole number of global batches: nothing cut
    (13, 2, 3, 12),   # G = 2 x 3 = 6: 13 = 2 x 6 + 1
])
def test_training_rows_are_cut_to_whole_global_batches(n_rows, batch, accum, kept):
    rows = list(range(n_rows))
    spec = TrainSpec(batch_size=batch, gradient_accumulation_steps=accum)
    assert distributed.whole_global_batches(rows, spec) == rows[:kept]  # the last rows of the file go
    # the cut is the profile's, so the same in every world: on 2 ranks every step is then whole on each rank
    split = distributed.divide_batch(spec, _world(2))
    assert kept % (split.batch_size * 2 * split.gradient_accumulation_steps) == 0


def test_fewer_rows_than_one_global_batch_are_an_error():
    with pytest.raises(ConfigError, match=r"3 training examples make no full global batch of 4 .*lower batch_size"):
        distributed.whole_global_batches([1, 2, 3], TrainSpec(batch_size=2, gradient_accumulation_steps=2))


def test_share_in_one_process_is_the_value_itself():
    assert distributed.share(["a"], _world(1)) == ["a"]


def test_shards_cover_every_record_once_in_a_fixed_order():
    shards = [list(distributed.shard(10, _world(3, r))) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_launch_command_starts_n_torchrun_ranks_on_cpu():
    argv, env = distributed.launch_command(2, cpu=True, port=29555)
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    # --cpu alone would start one process (accelerate's simple launcher); --multi_gpu is its torchrun path
    assert "--multi_gpu" in argv and "--cpu" not in argv and argv[argv.index("--num_processes") + 1] == "2"
    assert env == {"CLEANROOM_WORLD_SIZE": "2", "ACCELERATE_USE_CPU": "1"}
    one, env1 = distributed.launch_command(1, cpu=False)
    assert "--multi_gpu" not in one and env1 == {"CLEANROOM_WORLD_SIZE": "1"}


def test_ranks_meet_on_a_port_free_now_unless_one_is_given():
    import socket

    argv, _ = distributed.launch_command(2, cpu=True, port=29555)
    assert argv[argv.index("--main_process_port") + 1] == "29555"
    argv, _ = distributed.launch_command(2, cpu=True)
    port = int(argv[argv.index("--main_process_port") + 1])
    with socket.socket() as s:  # nothing listens there: a second launch beside a first does not collide
        s.bind(("127.0.0.1", port))


def test_a_world_smaller_than_launched_for_is_an_error(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("CLEANROOM_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="launched for 2 processes but this rank sees a world of 1"):
        distributed.world()
    monkeypatch.delenv("CLEANROOM_WORLD_SIZE")
    w = distributed.world()
    assert (w.world_size, w.rank, w.is_main, w.backend) == (1, 0, True, None)
    assert distributed.describe(w) == {"world_size": 1, "backend": None, "devices": [w.device]}


def test_on_main_runs_on_rank_zero_only(monkeypatch):
    ran = []
    monkeypatch.setattr(distributed, "barrier", lambda w: ran.append(("barrier", w.rank)))
    for rank in (0, 1):
        distributed.on_main(_world(2, rank), lambda r=rank: ran.append(("write", r)))
    assert ran == [("write", 0), ("barrier", 0), ("barrier", 1)]
