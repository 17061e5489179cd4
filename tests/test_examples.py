"""The README's first command: the demo trains, and its loss falls."""

import re
import subprocess
import sys
from pathlib import Path

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
