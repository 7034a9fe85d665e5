"""Command-line plumbing shared by tools/train.py and tools/test.py.

Not a package module: the two scripts import it by plain name (a script's
folder is first on ``sys.path``). What a config can name (the optimizer
wrapper, hooks) lives in ``sparseformer_mm``; this is only what a launcher
needs: the shared options, and ``--launcher pytorch|slurm|mpi`` on a
machine without GPUs (a gloo process group).
"""
import datetime
import logging
import os
import os.path as osp
import subprocess
import sys
from typing import Tuple

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from sparseformer_mm.engine import amp_available


def load_config(args) -> Config:
    """Read ``args.config`` and fold in the options both tools share:
    ``--cfg-options``, ``--launcher`` and ``--work-dir`` (default
    ``./work_dirs/<config name>``), as mmaction2's tools do."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if cfg.launcher != 'none':
        set_dist_timeout(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


DEFAULT_DIST_TIMEOUT = 1800  # seconds


def set_dist_timeout(cfg: Config) -> int:
    """Give collectives a bounded wait: ``env_cfg.dist_cfg.timeout``.

    When a rank dies or hangs, the others block in their next collective
    until this timeout (then raise and exit), unless the launcher stops them
    first (``torchrun`` does on one node). mmengine's ``init_dist`` and
    :func:`setup_cpu_distributed` pass it to ``init_process_group``. The
    value, in seconds, is the config's if set (``--cfg-options
    env_cfg.dist_cfg.timeout=600``), else the ``DIST_TIMEOUT`` environment
    variable, else 1800 (30 minutes: long enough for a slow first
    validation or checkpoint on a big model; torch's own default is 10
    minutes for NCCL).

    Returns:
        int: The timeout in seconds.
    """
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    if dist_cfg.get('timeout') is None:
        value = os.environ.get('DIST_TIMEOUT', DEFAULT_DIST_TIMEOUT)
        try:
            dist_cfg['timeout'] = int(value)
        except ValueError:
            raise ValueError(f'DIST_TIMEOUT must be a number of seconds, '
                             f'got {value!r}') from None
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    return dist_cfg['timeout']


def _dist_env(launcher: str) -> Tuple[int, int]:
    """Return ``(rank, world_size)`` for ``launcher`` and fill in the
    ``MASTER_ADDR``/``MASTER_PORT`` variables the ``env://`` rendezvous needs,
    the way mmengine's ``init_dist`` derives them (minus the CUDA calls)."""
    if launcher == 'pytorch':
        # torchrun exports RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
        return int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    if launcher == 'slurm':
        rank = int(os.environ['SLURM_PROCID'])
        world_size = int(os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK',
                              os.environ.get('SLURM_LOCALID', '0'))
        if 'MASTER_ADDR' not in os.environ:
            node_list = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {node_list} | head -n1')
    elif launcher == 'mpi':
        rank = int(os.environ['OMPI_COMM_WORLD_RANK'])
        world_size = int(os.environ['OMPI_COMM_WORLD_SIZE'])
        os.environ.setdefault('LOCAL_RANK',
                              os.environ['OMPI_COMM_WORLD_LOCAL_RANK'])
        if 'MASTER_ADDR' not in os.environ:
            raise KeyError('The environment variable MASTER_ADDR is not set')
    else:
        raise ValueError(f'Invalid launcher type: {launcher}')
    os.environ.setdefault('MASTER_PORT', '29500')  # torch's default port
    os.environ['RANK'] = str(rank)
    os.environ['WORLD_SIZE'] = str(world_size)
    return rank, world_size


def setup_cpu_distributed(cfg: Config) -> bool:
    """Make ``--launcher pytorch|slurm|mpi`` work on a machine without GPUs.

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its
    ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP, so both
    fail on CPU. Here the process group is created with the ``gloo`` backend
    before the Runner is built: ``Runner.setup_env`` only calls ``init_dist``
    when ``not is_distributed()``, so it then uses this group as is. The DDP
    wrapper is configured with ``device_ids=None`` (the CPU form).

    Nothing happens when the launcher is ``'none'`` or an accelerator is
    available; GPU clusters keep mmengine's own (NCCL) set-up.

    Args:
        cfg (Config): The full config, after ``load_config``; its
            ``env_cfg.dist_cfg`` and ``model_wrapper_cfg`` are updated in
            place.

    Returns:
        bool: Whether the CPU (gloo) set-up was applied.
    """
    if cfg.get('launcher', 'none') == 'none' or get_device() != 'cpu':
        return False
    # Assign rather than setdefault: ConfigDict stores a converted copy of a
    # new plain dict, so edits to the returned one would be lost.
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    dist_cfg['backend'] = 'gloo'  # so the logged runtime env tells the truth
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    if not torch_dist.is_initialized():
        rank, world_size = _dist_env(cfg.launcher)
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
        restart = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0'))
        if restart > 0:
            # After a torchrun restart the store still holds the dead
            # attempt's gloo addresses under the same keys, and the new
            # ranks would connect to them; give this attempt its own keys.
            store = torch_dist.TCPStore(
                os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']),
                world_size, is_master=os.environ.get(
                    'TORCHELASTIC_USE_AGENT_STORE') != 'True' and rank == 0,
                timeout=kwargs.get('timeout', datetime.timedelta(minutes=30)))
            kwargs['store'] = torch_dist.PrefixStore(f'restart{restart}',
                                                     store)
        else:
            kwargs['init_method'] = 'env://'
        torch_dist.init_process_group(
            backend='gloo', rank=rank, world_size=world_size, **kwargs)

    wrapper_cfg = dict(type='MMDistributedDataParallel')
    if cfg.get('find_unused_parameters') is not None:
        # The Runner reads this key only when it builds the wrapper itself.
        wrapper_cfg['find_unused_parameters'] = cfg.find_unused_parameters
    wrapper_cfg.update(cfg.get('model_wrapper_cfg') or {})
    wrapper_type = MODEL_WRAPPERS.get(wrapper_cfg['type'])
    if isinstance(wrapper_type, type) and issubclass(
            wrapper_type, DistributedDataParallel):
        # None is DDP's CPU form; the Runner's default [LOCAL_RANK] is a
        # CUDA device index. Config keys win over the Runner's defaults.
        wrapper_cfg['device_ids'] = None
        wrapper_cfg.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper_cfg

    if torch_dist.get_rank() == 0:
        print_log(
            f'No GPU found: distributed {cfg.launcher} launch runs on CPU '
            f'with the gloo backend '
            f'(world size {torch_dist.get_world_size()}).', logger='current')
    return True


def check_amp_device(cfg: Config) -> None:
    """Fail early, saying why, when a config requires AMP (``--amp``,
    ``AmpOrFp32OptimWrapper(amp=True)`` or ``type='AmpOptimWrapper'``) on a
    machine without an accelerator.

    mmengine only asserts when ``Runner.train()`` builds the wrapper, after
    the datasets are built and, distributed, every rank has joined the
    process group. ``AmpOrFp32OptimWrapper`` (the configs' choice, with
    ``amp='auto'``) falls back to fp32 instead and passes.
    """
    optim = cfg.get('optim_wrapper') or {}
    optim_type = optim.get('type', 'OptimWrapper')
    required = optim_type == 'AmpOptimWrapper' or (
        optim_type == 'AmpOrFp32OptimWrapper' and optim.get('amp') is True)
    if required and not amp_available():
        raise RuntimeError(
            'Mixed precision (--amp / AmpOptimWrapper) needs a GPU, but none '
            'is available; drop --amp to train in fp32, or set '
            "optim_wrapper.type='AmpOrFp32OptimWrapper' with amp='auto' (AMP "
            'with a GPU, fp32 without).')


def teardown_distributed() -> None:
    """Leave the process group cleanly before the interpreter exits.

    Without it a gloo rank can still have its background threads running at
    exit and abort ("terminate called without an active exception"), which
    torchrun reports as a failed job even though the work is done.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gloo = torch_dist.get_backend() == 'gloo'
        torch_dist.barrier()
        torch_dist.destroy_process_group()
        if gloo:
            # Even after the group is destroyed, gloo's threads can abort
            # the interpreter's own teardown (seen 1 in ~10 runs on 2
            # loaded cores). The work is done and the logs are flushed:
            # leave without it.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
