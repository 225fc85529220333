"""platforms.py at the points the graph calls, on the stand-in adapter."""

import ascend
import platforms
from flag_table import parse_train_config


def test_the_adapters_loss_scaling_follows_the_runs_final_precision_mode(standins):
    """The platform is made before a resumed run's flags are read: its
    optimizer wrapper must read precision_mode from the config it is given
    (a resumed run's saved mode), not from when it was made."""
    card = platforms.Ascend(ascend.RankInfo(1, 0, 0))
    config, _, _ = parse_train_config([])
    wrapper, ours = card.optimizer_wrapper(config._replace(precision_mode="force_fp32"))
    assert wrapper is not None and not ours  # the adapter scales the loss, not train_ops
    wrapper, _ = card.optimizer_wrapper(config._replace(precision_mode="must_keep_origin_dtype"))
    assert wrapper is None  # one card, no loss scaling: nothing to wrap
