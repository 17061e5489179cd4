"""The README's first command: the demo trains, and its loss falls."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_demo_trains_a_tiny_network_and_its_loss_falls():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--steps", "200"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)%$", result.stdout, flags=re.MULTILINE)
    losses = [float(loss) for _, loss, _ in rows]
    accuracies = [float(accuracy) for _, _, accuracy in rows]
    assert len(losses) == 11, result.stdout
    assert losses[-1] < 0.5 * losses[0], result.stdout
    assert accuracies[-1] > 90.0, result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", readme, flags=re.DOTALL).group(1).splitlines()
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def run_example(*args, timeout=300):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_perceptron_example_prints_the_table_and_shows_xor_needs_a_hidden_layer():
    out = run_example(ROOT / "examples" / "perceptron.py")
    assert "pattern    windy   cloudy nice day       w0  w_windy w_cloudy     h(x)    delta" in out
    assert "converged after 3 passes" in out and "[0.0, -1.0, -1.0]" in out
    assert "without converging (converged=False)" in out
    assert "MLP trained with autograd predicts [0, 1, 1, 0]" in out


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="apt-get install dataset-fashion-mnist (.ci/run installs it)")
def test_lenet5_example_smoke_run_writes_history_checkpoint_and_plot(tmp_path):
    out = run_example(ROOT / "examples" / "lenet5_fashion_mnist.py", "--subset", 512,
                      "--epochs", 1, "--out", tmp_path, "--no-progress")
    assert re.search(r"test accuracy \d+\.\d+% after 1 epochs", out), out
    for name in ("history.json", "history.csv", "curves.png", "last.npz", "best.npz"):
        assert (tmp_path / name).is_file(), name


def test_vgg16_example_smoke_run_on_a_synthetic_voc_tree(tmp_path):
    out = run_example(ROOT / "examples" / "vgg16_voc.py", "--synthetic", 16, "--image-size", 32,
                      "--width-mult", 0.125, "--epochs", 1, "--workers", 2, "--out", tmp_path,
                      "--no-progress")
    assert "val mAP" in out and "aeroplane" in out, out
    for name in ("history.json", "history.csv", "curves.png", "last.npz", "best.npz"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "synthetic_voc" / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir()
    # a run's own checkpoint (20 classes) serves as --pretrained for the next run
    again = run_example(ROOT / "examples" / "vgg16_voc.py", "--synthetic", 16, "--image-size",
                        32, "--width-mult", 0.125, "--epochs", 1, "--workers", 2, "--out",
                        tmp_path / "again", "--no-progress", "--pretrained",
                        tmp_path / "best.npz")
    assert "val mAP" in again
