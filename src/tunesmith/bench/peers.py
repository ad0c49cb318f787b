"""The peers, each installed into its own venv under ``<bench dir>/venvs/<peer>``.

torch stays the CPU 2.13.0 build in every venv (a constraints file pins it). LLaMA-Factory pulls
torchvision/torchaudio, whose PyPI wheels are CUDA builds that bring a newer CUDA torch and
cannot load with the CPU one: after installing it we remove them (and the CUDA packages) and
reinstall torch 2.13.0; a stand-in ``torchaudio`` module goes on PYTHONPATH at run time.
Everything runs as argument lists (no shell).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import TunesmithError

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "peer_scripts"
TORCH = "torch==2.13.0"
CUDA_LEFTOVERS = ("torch", "torchvision", "torchaudio", "triton")


class PeerInstallError(TunesmithError):
    """A peer could not be installed."""


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    script: str
    torch_dance: bool = False  # remove CUDA torch/vision/audio after install
    stub_torchaudio: bool = False
    stage_scripts: tuple = ()  # (stage, child script) for workloads of other stages (W4: dpo)


PEERS = {
    "trl": Peer("trl", ("trl==1.16.*", "peft", "accelerate", "datasets"), "trl_child.py",
                stage_scripts=(("dpo", "trl_dpo_child.py"),)),
    # jieba, nltk, rouge-chinese: its requirements/metrics.txt, which --do_predict imports
    "llamafactory": Peer("llamafactory", ("llamafactory==0.9.5", "jieba", "nltk", "rouge-chinese"),
                         "lf_child.py",
                         torch_dance=True, stub_torchaudio=True,
                         stage_scripts=(("dpo", "lf_dpo_child.py"),)),
}


def get_peer(name: str) -> Peer:
    from ..errors import ConfigError

    if name not in PEERS:
        raise ConfigError(f"--peers: '{name}' is not one of {', '.join(PEERS)}")
    return PEERS[name]


def _run(cmd: list, log: Path) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(map(str, cmd)) + "\n")
        fh.flush()
        done = subprocess.run([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise PeerInstallError(f"'{' '.join(map(str, cmd[:6]))} ...' failed "
                               f"(exit {done.returncode}); see {log}")


def venv_python(root: Path, peer: Peer) -> Path:
    return root / "venvs" / peer.name / "bin" / "python"


def _cuda_packages(python: Path) -> list[str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                         capture_output=True, text=True, check=True).stdout
    names = [line.split("==")[0] for line in out.splitlines() if "==" in line]
    return [n for n in names if n.lower().startswith(("nvidia-", "cuda-")) or n in CUDA_LEFTOVERS]


def install(peer: Peer, root: Path, say=print) -> Path:
    """Create (once) the peer's venv and return its python; a marker file records success."""
    venv = root / "venvs" / peer.name
    python = venv_python(root, peer)
    marker = venv / ".tunesmith-installed"
    if marker.is_file():
        return python
    log = root / "venvs" / f"{peer.name}-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    constraints = root / "venvs" / "constraints.txt"
    constraints.write_text(TORCH + "\n", encoding="utf-8")
    say(f"installing {peer.name} into {venv} (log: {log})")
    _run([sys.executable, "-m", "venv", venv], log)
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + [TORCH], log)
    _run(pip + ["-c", constraints, *peer.requirements], log)
    if peer.torch_dance:
        _run([python, "-m", "pip", "uninstall", "-y", *_cuda_packages(python)], log)
        _run(pip + [TORCH], log)
    marker.write_text(" ".join(peer.requirements) + "\n", encoding="utf-8")
    return python


def command(peer: Peer, python: Path, spec_path: Path) -> tuple[list[str], dict]:
    """The argument list and environment that run ``peer`` on a spec."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", DISABLE_VERSION_CHECK="1",
               WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    paths = [str(SCRIPTS)]
    if peer.stub_torchaudio:
        paths.append(str(SCRIPTS / "torchaudio_stub"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return [str(python), str(SCRIPTS / script_for(peer, spec_path)), str(spec_path)], env


def script_for(peer: Peer, spec_path: Path) -> str:
    """The peer's child script for the spec's stage (SFT workloads: ``peer.script``)."""
    import json

    stage = json.loads(Path(spec_path).read_text(encoding="utf-8")).get("stage", "sft")
    return dict(peer.stage_scripts).get(stage, peer.script)
