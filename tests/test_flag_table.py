"""flag_table.py: which flags a command line gives (a flag given at its
default value counts: it wins over a recipe and a resumed run), and the
flags other commands share with the trainer."""

import argparse

from flag_table import add_flags, build_parser, explicit_flags, parse_train_config


def test_explicit_flags_are_those_on_the_command_line_whatever_their_value():
    argv = ["--dataset", "MNIST", "--seed", "0", "--debug", "--dump_result",
            "--learning_rate_d=0.001", "--platform_arg", "x"]
    assert explicit_flags(argv) == {"dataset", "seed", "debug", "dump_result",
                                    "learning_rate_d"}
    assert explicit_flags([]) == set()
    config, explicit, unknown = parse_train_config(argv)
    assert explicit == explicit_flags(argv) and unknown == ["--platform_arg", "x"]
    assert config.seed == 0 and config.debug and config.dump_result is True
    assert config.batch_size == 32 and config.learning_rate_d == 0.001  # defaults filled


def test_shared_flags_are_the_trainers_own():
    evaler = argparse.ArgumentParser()
    add_flags(evaler, ("device", "debug"))
    trainer = build_parser()

    def action(parser, flag):
        return next(a for a in parser._actions if flag in a.option_strings)
    for flag in ("--device", "--debug"):
        ours, theirs = action(evaler, flag), action(trainer, flag)
        assert (ours.choices, ours.default, ours.help) == \
            (theirs.choices, theirs.default, theirs.help)
    assert evaler.parse_args(["--device", "cpu"]).device == "cpu"
