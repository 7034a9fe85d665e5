"""sparseformer_mm: SparseFormer for image and video recognition (OpenMMLab)."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    lines = open(osp.join(HERE, 'requirements', name)).read().splitlines()
    return [ln.split('#')[0].strip() for ln in lines
            if ln.split('#')[0].strip()]


def read_version():
    scope = {}
    exec(open(osp.join(HERE, 'sparseformer_mm', 'version.py')).read(), scope)
    return scope['__version__']


setup(
    name='sparseformer_mm',
    version=read_version(),
    description='SparseFormer and VideoSparseFormer for mmpretrain/mmaction2',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['sparseformer_mm', 'sparseformer_mm.*']),
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        # No mmcv in install_requires: an existing full mmcv must not get a
        # second copy on top. Without one: pip install -e ".[mmcv-lite]".
        'mmcv-lite': read_requirements('mmcv.txt'),
        'tests': read_requirements('tests.txt'),
    },
    license='MIT',
)
