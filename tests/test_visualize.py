"""scripts/visualize_training.py on a real run folder."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test here trains or runs commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "visualize_training.py")


def test_gif_sheet_and_curves_from_a_run(trained, tmp_path):
    from PIL import Image
    out = str(tmp_path / "pictures")
    result = subprocess.run([sys.executable, SCRIPT, trained[0], "--output_dir", out],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    gif = Image.open(os.path.join(out, "training.gif"))
    assert gif.n_frames == 3  # samples-100, -200, -300
    assert gif.size == (128, 128)
    for name in ("samples_sheet.png", "curves.png"):
        image = Image.open(os.path.join(out, name))
        assert image.format == "PNG" and image.size[0] > 300


def test_not_a_run_folder(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "is it a run folder" in result.stderr
