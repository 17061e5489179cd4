"""The README's first command: the demo trains, and its loss falls."""

import json
import re
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import minigrad as mg

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
    assert len(commands) == 3 and commands[0].startswith("python3 -m venv .venv")
    assert commands[2] in (ROOT / ".ci" / "run").read_text().splitlines()


README_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(),
                           flags=re.DOTALL)


@pytest.mark.parametrize("block", range(len(README_BLOCKS)))
def test_every_python_block_of_the_readme_runs_as_pasted(tmp_path, block):
    code = README_BLOCKS[block]
    if "FashionMNIST(" in code and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("the block reads Fashion-MNIST: apt-get install dataset-fashion-mnist")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, code + result.stderr


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


# --- the command lines as a student meets them (issue 13) -----------------------------------

EXAMPLES = ROOT / "examples"
SYNTHETIC = ["--synthetic", "8", "--image-size", "32", "--width-mult", "0.125", "--workers", "0",
             "--no-progress"]


def _run(script, *args, timeout=120):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("script", ["demo.py", "perceptron.py", "lenet5_fashion_mnist.py",
                                    "vgg16_voc.py", "unet_voc_segmentation.py",
                                    "lstm_sequence.py", "second_order.py"])
def test_help_lists_every_flag_with_its_help_and_default_and_runs_nothing(script):
    result = _run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr
    ran = {"demo.py": "loss  accuracy", "perceptron.py": "converged",
           "lenet5_fashion_mnist.py": "parameters,", "vgg16_voc.py": "trainable parameters",
           "unet_voc_segmentation.py": "parameters;", "lstm_sequence.py": "parameters;",
           "second_order.py": "Newton's method on"}
    assert ran[script] not in result.stdout  # --help only shows help
    module = runpy.run_path(str(EXAMPLES / script))
    if "build_parser" in module:
        for action in module["build_parser"]()._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, action.option_strings
                if action.default is not None and not isinstance(action.default, bool):
                    flag = action.option_strings[0]
                    text = " ".join(result.stdout.split())
                    assert f"{flag} " in text and f"(default: {action.default})" in text, flag


@pytest.mark.parametrize("script, args, flag", [
    ("lenet5_fashion_mnist.py", ["--batch-size", "0"], "--batch-size"),
    ("lenet5_fashion_mnist.py", ["--epochs", "0"], "--epochs"),
    ("lenet5_fashion_mnist.py", ["--lr", "-1"], "--lr"),
    ("lenet5_fashion_mnist.py", ["--subset", "0"], "--subset"),
    ("lenet5_fashion_mnist.py", ["--data-dir", "/no/such/folder"], "--data-dir"),
    ("lenet5_fashion_mnist.py", ["--device", "cuda"], "--device"),
    ("vgg16_voc.py", ["--voc-root", "/no/such/folder"], "--voc-root"),
    ("vgg16_voc.py", [*SYNTHETIC, "--pretrained", "/no/such/file.pth"], "--pretrained"),
    ("vgg16_voc.py", [*SYNTHETIC, "--device", "cuda"], "--device"),
    ("vgg16_voc.py", ["--download", *SYNTHETIC], "--download"),
    ("demo.py", ["--steps", "0"], "--steps"),
    ("vgg16_voc.py", ["--synthetic", "8", "--image-size", "8"], "--image-size"),
    ("vgg16_voc.py", [*SYNTHETIC, "--pretrained", str(ROOT / "README.md")], "--pretrained"),
    ("lenet5_fashion_mnist.py", ["--out", str(ROOT / "README.md")], "--out"),
])
def test_a_command_line_mistake_is_one_line_naming_the_flag(tmp_path, script, args, flag):
    out = [] if script == "demo.py" or "--out" in args else ["--out", tmp_path]
    result = _run(script, *out, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in result.stderr, lines
    assert not Path("/no/such/folder").exists()
    debug = _run(script, *out, *args, "--debug")
    if result.returncode == 1:  # not argparse's own: --debug shows where it came from
        assert "Traceback" in debug.stderr


def test_resume_with_a_damaged_checkpoint_names_the_flag(tmp_path):
    (tmp_path / "last.npz").write_bytes(b"half a checkpoint")
    result = _run("vgg16_voc.py", *SYNTHETIC, "--epochs", 1, "--out", tmp_path, "--resume")
    assert result.returncode == 1
    assert result.stderr.startswith("vgg16_voc.py: error: --resume: load: ") and \
        "last.npz is not a readable .npz file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_saves_mid_run_prints_how_to_resume_and_resume_finishes(tmp_path):
    command = [sys.executable, str(EXAMPLES / "vgg16_voc.py"), *SYNTHETIC, "--epochs", "500",
               "--out", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
    for line in process.stdout:  # training has begun once an epoch is reported
        if line.startswith("epoch 1 |"):
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "interrupted in epoch" in last and "saved" in last and "--resume" in last, err
    saved = mg.load(tmp_path / "last.npz")
    epoch = saved["position"]["epoch"] if saved["position"] else saved["epoch"] + 1
    resumed = _run("vgg16_voc.py", *SYNTHETIC, "--epochs", epoch + 1, "--out", tmp_path,
                   "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and f"epoch {epoch + 1} |" in resumed.stdout
    again = _run("vgg16_voc.py", *SYNTHETIC, "--epochs", epoch + 1, "--out", tmp_path,
                 "--resume")
    assert "nothing to train" in again.stdout
    assert "wrote" not in again.stdout.replace("wrote 8 synthetic images", "")


def test_runs_and_virtual_environments_are_ignored_by_git_and_the_package_is_not():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("runs/lenet5/last.npz") and ignored("examples/runs/x/best.npz")
    assert ignored(".venv/bin/python") and ignored("data/voc/VOCtrainval_11-May-2012.tar")
    assert not ignored("minigrad/data/download.py") and not ignored("minigrad/data/voc.py")


def test_unet_example_segments_a_synthetic_voc_tree(tmp_path):
    out = run_example(EXAMPLES / "unet_voc_segmentation.py", "--synthetic", 24, "--image-size",
                      32, "--width", 4, "--depth", 2, "--epochs", 1, "--workers", 0, "--out",
                      tmp_path, "--no-progress")
    assert "val mIoU" in out and "background" in out and "tvmonitor" in out, out
    for name in ("history.json", "history.csv", "curves.png", "last.npz", "best.npz"):
        assert (tmp_path / name).is_file(), name
    assert "val_mIoU" in (tmp_path / "history.csv").read_text().splitlines()[0]


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="apt-get install dataset-fashion-mnist")
def test_lstm_example_reads_fashion_mnist_rows(tmp_path):
    out = run_example(EXAMPLES / "lstm_sequence.py", "--subset", 600, "--epochs", 1,
                      "--hidden", 16, "--out", tmp_path, "--no-progress")
    assert "over the 28 rows of 600 training images" in out and "test accuracy" in out, out
    assert (tmp_path / "last.npz").is_file()


def test_resnet_arch_trains_from_torchvision_weights(tmp_path):
    helpers = pytest.importorskip("test_models")
    t = pytest.importorskip("torch")
    t.save(helpers.torch_resnet([2, 2, 2, 2]).state_dict(), tmp_path / "resnet18.pth")
    out = run_example(EXAMPLES / "vgg16_voc.py", "--arch", "resnet18", "--synthetic", 8,
                      "--image-size", 32, "--epochs", 1, "--workers", 0, "--out",
                      tmp_path / "run", "--pretrained", tmp_path / "resnet18.pth",
                      "--freeze-features", "--no-progress")
    assert "ResNet-18 (width x1.0): 10,260 trainable parameters" in out, out  # fc: 512*20 + 20
    assert "val mAP" in out


@pytest.mark.parametrize("precision, says", [
    ("default", "precision default: float32 (the CPU computes"),
    ("fp32", "precision fp32: float32"),
    ("amp", "precision amp: mixed precision: float16 autocast")])
def test_vgg16_example_takes_precision_and_says_which_is_in_force(tmp_path, precision, says):
    result = _run("vgg16_voc.py", *SYNTHETIC, "--epochs", "1", "--out", tmp_path,
                  "--precision", precision)
    assert result.returncode == 0, result.stderr
    assert says in result.stdout and "val mAP" in result.stdout
    if precision == "amp":
        assert mg.load(tmp_path / "last.npz")["scaler"]["scale"] == 2.0**16


def test_second_order_example_converges_quadratically_and_trains_a_penalised_critic():
    result = _run("second_order.py", "--newton-steps", "6", "--penalty-steps", "12")
    assert result.returncode == 0, result.stderr
    xs = [float(x) for x in re.findall(r": x = (-?[\d.]+)", result.stdout)]
    assert len(xs) == 6 and abs(xs[-1] - 1.1309011226) < 1e-9, result.stdout  # f'(x) = 0
    rows = re.findall(r"^\s+\d+\s+([\d.]+)\s+([\d.]+)$", result.stdout, flags=re.MULTILINE)
    newton, descent = [float(a) for a, _ in rows], [float(b) for _, b in rows]
    assert abs(newton[-1] - newton[-2]) < 1e-9 < abs(descent[-1] - descent[-2]), result.stdout
    assert newton[-1] < descent[-1], result.stdout
    penalties = [float(p) for p in re.findall(r"step +\d+: ([\d.]+)$", result.stdout,
                                              flags=re.MULTILINE)]
    assert penalties and penalties[-1] < penalties[0], result.stdout


STUDY = ["--data", "synthetic", "--synthetic-size", 120, "--width", 0.0625, "--batch-size", 24,
         "--no-progress"]


def test_architecture_study_trains_each_model_and_writes_the_table_and_plot(tmp_path):
    out = run_example(EXAMPLES / "architecture_study.py", *STUDY, "--epochs", 2,
                      "--out", tmp_path)
    rows = json.loads((tmp_path / "study.json").read_text())
    assert [r["model"] for r in rows] == ["preact_resnet18", "resnet18", "densenet121", "vgg16"]
    for r in rows:  # each row's figures are its own model's, measured independently here
        model = {"preact_resnet18": lambda: mg.models.preact_resnet18(10, width_mult=0.0625),
                 "resnet18": lambda: mg.models.cifar_resnet18(10, width_mult=0.0625),
                 "densenet121": lambda: mg.models.DenseNet(2, (6, 12, 24, 16), 4, num_classes=10),
                 "vgg16": lambda: mg.models.cifar_vgg16(10, width_mult=0.0625)}[r["model"]]()
        assert r["parameters"] == sum(p.numel() for p in model.parameters()), r
        assert r["epochs"] == 2 and r["seconds_per_epoch"] > 0 and 0 <= r["test_accuracy"] <= 1
        assert r["mult_adds"] > r["parameters"] / 2  # conv weights are used at many positions
        assert (tmp_path / r["model"] / "last.npz").is_file()
        assert f"| {r['title']} | {r['parameters']:,} |" in out
    assert (tmp_path / "study.png").stat().st_size > 10_000
    assert (tmp_path / "study.csv").read_text().splitlines()[0].startswith("model,title,")
    again = run_example(EXAMPLES / "architecture_study.py", *STUDY, "--epochs", 2,
                        "--out", tmp_path, "--resume", "--models", "vgg16")
    assert "nothing to train" in again and "| VGG16-BN (32x32) |" in again


def test_architecture_study_ctrl_c_keeps_the_models_finished(tmp_path):
    command = [sys.executable, str(EXAMPLES / "architecture_study.py"), *map(str, STUDY),
               "--epochs", "1", "--models", "vgg16", "densenet121", "--out", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
    for line in process.stdout:  # the second model has begun
        if line.startswith("DenseNet-121:"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    rows = json.loads((tmp_path / "study.json").read_text())
    assert [r["model"] for r in rows] == ["vgg16"]
    assert "wrote the table of the 1 models finished" in out


def test_architecture_study_without_cifar_says_how_to_get_it(tmp_path):
    result = _run("architecture_study.py", "--data-dir", tmp_path, "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "--data-dir" in result.stderr and "--download" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="apt-get install dataset-fashion-mnist (.ci/run installs it)")
def test_compress_lenet5_example_measures_each_way_of_making_it_smaller(tmp_path):
    out = run_example(EXAMPLES / "compress_lenet5.py", "--subset", 600, "--epochs", 1,
                      "--finetune-epochs", 1, "--sparsities", 0.8, "--energies", 0.9,
                      "--out", tmp_path, "--no-progress")
    rows = {r["name"]: r for r in json.loads((tmp_path / "compression.json").read_text())}
    assert list(rows) == ["float LeNet5", "pruned 80%", "int8 dynamic (linears)",
                          "int8 static", "factorized, energy 0.9", "student alone",
                          "student distilled"]
    base = rows["float LeNet5"]
    assert base["parameters"] == 61_706 and base["nonzero_parameters"] == 61_706
    pruned = rows["pruned 80%"]  # 80% of the conv and linear weights, biases kept
    weights = 6 * 25 + 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert pruned["nonzero_parameters"] <= 61_706 - round(0.8 * weights)
    assert rows["int8 static"]["bytes"] < 0.35 * base["bytes"]
    assert rows["int8 dynamic (linears)"]["bytes"] < 0.4 * base["bytes"]
    assert rows["factorized, energy 0.9"]["parameters"] < base["parameters"]
    assert rows["student alone"]["parameters"] <= base["parameters"] / 3.9
    assert all(0 <= r["test_accuracy"] <= 1 for r in rows.values())
    assert (tmp_path / "compression.png").stat().st_size > 10_000
    assert "| int8 static |" in out and (tmp_path / "student_distilled" / "last.npz").is_file()
