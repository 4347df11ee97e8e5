"""The Ray extra without a cluster: the pin, the ``--ray`` flag, settings, and that the
single-machine path never imports ray."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from chatbot import cli
from chatbot.config import PROJECT_ROOT, Settings


def test_extra_pin_matches_requirements_file() -> None:
    extra = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["ray"]
    lines = (PROJECT_ROOT / "requirements-ray.txt").read_text().splitlines()
    pins = [x.split("#")[0].strip() for x in lines if x.split("#")[0].strip()]
    assert extra == pins == [p for p in pins if p.startswith("ray==")]


def parse(*argv: str):  # noqa: ANN201 - argparse namespace
    return cli.build_parser().parse_args(list(argv))


def test_ray_flag_address_and_paths() -> None:
    args = parse("index", "build", "corpus", "--ray")
    assert cli.ray_address(args) == "auto" and args.paths == ["corpus"]
    args = parse("index", "add", "a.txt", "--ray", "10.0.0.5:6379")
    assert cli.ray_address(args) == "10.0.0.5:6379" and args.paths == ["a.txt"]
    # `--ray PATH`: the value is no address, so it is a path and the cluster is `auto`.
    args = parse("index", "add", "--ray", "docs/", "b.txt")
    assert cli.ray_address(args) == "auto" and args.paths == ["docs/", "b.txt"]
    args = parse("ask", "q.txt", "--ray=auto")
    assert cli.ray_address(args) == "auto"
    assert cli.ray_address(parse("ask", "q.txt")) is None


def test_ray_settings_from_env() -> None:
    env = {"CHATBOT_RAY_ADDRESS": "auto", "CHATBOT_RAY_BATCH": "256", "CHATBOT_RAY_RETRIES": "0"}
    s = Settings.from_env(env)
    assert (s.ray_address, s.ray_batch, s.ray_retries, s.ray_actor_cpus) == ("auto", 256, 0, 1)
    assert Settings.from_env(env, ray_address="127.0.0.1:1").ray_address == "127.0.0.1:1"


def test_single_machine_path_never_imports_ray() -> None:
    code = (
        "import sys\n"
        "from chatbot import cli, service, batch, build\n"
        "cli.build_parser().parse_args(['ask', 'q.txt'])\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
