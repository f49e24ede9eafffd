"""Preflight's pure parts: checkpoint disk need, budget, revision pin, architecture and rates, from configs alone."""

from __future__ import annotations

from cleanroom.config import load_config
from cleanroom.pipeline.preflight import checkpoint_disk


def test_checkpoint_disk_of_the_production_profile():
    """qwen2.5-32b: nf4, r=64 on all projections (N = 536,870,912), paged_adamw_8bit, save_total_limit 2.

    One checkpoint: N * (2 B bf16 adapter + 2 B 8-bit moments) + 32 MiB = 2,181,038,080 B; one adapter
    N * 2 = 1,073,741,824 B, two copies. SFT: ceil(2000 / (4 * 4)) * 2 = 250 steps, ceil(250 / 100) = 3
    saves, at most 2 + 1 = 3 on disk: 3 * 2,181,038,080 + 2 * 1,073,741,824 = 8,690,597,888 B. DPO:
    ceil(1000 / (2 * 8)) = 63 steps, 1 save: 2,181,038,080 + 2,147,483,648 = 4,328,521,728 B.
    Total 13,019,119,616 B = 13.0 GB, far above the 1 GB floor the check used to apply.
    """
    need = checkpoint_disk(load_config("qwen2.5-32b"), "Qwen2.5-32B")
    assert need["sft"]["checkpoints"] == 3 and need["sft"]["checkpoint_bytes"] == 2_181_038_080
    assert need["sft"]["bytes"] == 8_690_597_888
    assert need["dpo"]["checkpoints"] == 1 and need["dpo"]["bytes"] == 4_328_521_728
    assert need["total_bytes"] == 13_019_119_616
    unlimited = checkpoint_disk(load_config("qwen2.5-32b", ["sft.train.save_total_limit=null"]), "Qwen2.5-32B")
    assert unlimited["sft"]["checkpoints"] == 3  # every save kept: still 3, the run only makes 3
    one = checkpoint_disk(load_config("qwen2.5-32b", ["sft.train.save_total_limit=1"]), "Qwen2.5-32B")
    assert one["sft"]["checkpoints"] == 2
