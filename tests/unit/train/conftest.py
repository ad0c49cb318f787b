"""Fixtures shared by the training-stage tests."""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_rm_dir(tiny_model_dir, tmp_path_factory):
    """A reward model dir as stage: rm leaves it after export: a model + value_head.safetensors."""
    import shutil

    from safetensors.torch import save_file

    out = tmp_path_factory.mktemp("rm")
    for f in tiny_model_dir.iterdir():
        shutil.copy(f, out / f.name)
    save_file({"v_head.weight": torch.randn(1, 32, generator=torch.Generator().manual_seed(1))},
              str(out / "value_head.safetensors"))
    return out


