"""`srx train`: train a SAFMN-family network on a folder of HR images (issue 14).

    config.py      TrainConfig, LossWeights, the learning-rate schedule (no torch)
    data.py        HR folder -> aligned LR/HR patches (MATLAB-exact bicubic), seeded per iteration
    losses.py      L1, FFT, output and per-block feature distillation
    transfer.py    --init (copy matching tensors), --teacher (frozen trained network)
    checkpoint.py  atomic safetensors + JSON, the one-file resume state
    loop.py        the loop: schedule, validation, checkpoints, Ctrl-C -> resumable stop
    command.py     the click command (thin; imports torch only when it runs)

`import srx.train` stays light (the CLI imports it for `srx --help`); the loop and its
torch import come with `srx.train.loop`.
"""

from __future__ import annotations

from srx.train.config import LossWeights, TrainConfig

__all__ = ["LossWeights", "TrainConfig"]
