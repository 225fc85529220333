"""util.py: the commands' log format (the model card's `[time] message`
lines, the level named otherwise) in the terminal and in a run's log file,
and a user mistake reported as one line with status 2."""

import logging
import re

import util
from datasets.errors import DatasetError
from errors import ConfigError

TIME = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] "


def test_info_lines_are_the_model_cards_and_others_name_their_level(tmp_path, capsys):
    util.setup_logging()
    log_file = util.add_log_file(str(tmp_path / "train.log"))
    try:
        logging.getLogger("trainer").info(" [train step 1] Supervised loss: 0.1")
        logging.getLogger("trainer").warning("look here")
        logging.getLogger("trainer").debug("not shown")
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    for text in (capsys.readouterr().err, (tmp_path / "train.log").read_text()):
        lines = text.splitlines()
        assert len(lines) == 2, text
        assert re.match(TIME + r" \[train step 1\] Supervised loss: 0\.1$", lines[0])
        assert re.match(TIME + "WARNING look here$", lines[1])


def test_a_user_mistake_is_one_line_and_status_2(capsys):
    util.setup_logging()

    def mistake(error):
        def body():
            raise error("--batch_size 500 is larger than the 200 examples of the test split")
        return body
    for error in (ConfigError, DatasetError):
        assert util.run_tf_command(mistake(error)) == 2
        err = capsys.readouterr().err
        assert re.match(TIME + "ERROR --batch_size 500 is larger than the 200 examples of "
                        "the test split\n$", err), err
    assert util.run_tf_command(lambda: 130) == 130
    assert util.run_tf_command(lambda: {"report": 1}) == 0  # a result: success
