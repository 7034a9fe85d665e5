import os

import pytest
import torch

import sparseformer_mm  # noqa: F401  (compat fixes + registries)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _default_scope():
    """A test that builds a Runner leaves its default scope as the current
    one (e.g. 'mmengine' for a config without ``default_scope``), which
    would send later tests' registry look-ups to the wrong registry."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def pytest_configure(config):
    torch.set_num_threads(min(2, os.cpu_count() or 1))
