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
    # the TensorFlow commands' frame, and download.py's (no TensorFlow set-up)
    for frame in (util.run_tf_command, util.report_user_errors):
        for error in (ConfigError, DatasetError):
            assert frame(mistake(error)) == 2
            err = capsys.readouterr().err
            assert re.match(TIME + "ERROR --batch_size 500 is larger than the 200 examples of "
                            "the test split\n$", err), err
        assert frame(lambda: 130) == 130
        assert frame(lambda: {"report": 1}) == 0  # a result: success


# What TensorFlow 2.21's libraries write to file descriptor 2 as they load.
START_UP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796281588.688332   18436 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results",
    "I0000 00:00:1796283536.102089    7882 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags."]
ERROR_LINE = "E0000 00:00:1796281588.7 loader.cc:12] could not load libcudart.so.12"


def write_start_up(module_dir):
    """A module that, imported, writes START_UP and ERROR_LINE to fd 2 as
    the C++ libraries do (under Python's own stderr)."""
    with open(str(module_dir / "noisy_start_up.py"), "w") as f:
        f.write("import os\nos.write(2, %r)\n" % ("\n".join(START_UP + [ERROR_LINE]) + "\n")
                .encode())


def test_tensorflows_start_up_lines_are_hidden_and_its_errors_kept(tmp_path, monkeypatch,
                                                                    capfd):
    write_start_up(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    environ = {}
    util.load_tensorflow("noisy_start_up", environ=environ)
    err = capfd.readouterr().err
    assert err == ERROR_LINE + "\n"
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "2"}  # its C++ INFO and WARNING lines


def test_debug_or_a_users_level_0_shows_every_tensorflow_line(tmp_path, monkeypatch, capfd):
    write_start_up(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for debug, environ in ((True, {}), (False, {"TF_CPP_MIN_LOG_LEVEL": "0"})):
        monkeypatch.delitem(__import__("sys").modules, "noisy_start_up", raising=False)
        util.load_tensorflow("noisy_start_up", debug=debug, environ=environ)
        assert capfd.readouterr().err.splitlines() == START_UP + [ERROR_LINE]
        assert environ.get("TF_CPP_MIN_LOG_LEVEL") == ("0" if environ else None)
