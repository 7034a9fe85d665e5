"""Whether a checkpoint's weights fit a model, and what to set when not.

The messages every loader shows (``load_from``, ``tools/test.py``,
``tools/infer.py``, a video backbone's ``pretrained``, an ``init_cfg`` of
type ``Pretrained``).
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Optional

from .archs import STEM_WEIGHT, infer_arch
from .checkpoint_formats import StateDict, unwrap_state_dict
from .compat import load_weights_only
from .models.backbones.inflation import (inflate_image_state_dict,
                                         is_image_state_dict)

# ---------------------------------------------------------------------------
# What to set when weights do not fit
# ---------------------------------------------------------------------------
def video_mismatch_message(own: StateDict, cand: StateDict, sd: StateDict,
                           path: str, *, arch: dict, replicates: int,
                           is_image: bool, name_of: Callable[[dict], str],
                           normalize: Callable[[dict], dict]) -> Optional[str]:
    """``None`` if ``cand`` (the file's weights ``sd`` as video weights)
    fits a VideoSparseFormer with state dict ``own``, else a message
    saying what to change.

    Args:
        arch (dict): the model's arch.
        name_of (callable): names an arch (``'tiny'`` for a zoo entry).
        normalize (callable): an arch in its full form, to compare two.
    """
    missing, unexpected = set(own) - set(cand), set(cand) - set(own)
    bad = {k for k in cand if k in own and cand[k].shape != own[k].shape}
    if not (missing or unexpected or bad):
        return None
    ours = name_of(arch)
    head = (f'{path} does not fit VideoSparseFormer(arch={ours}, '
            f'replicates={replicates}): ')
    keys = (f'missing {sorted(missing)[:10]}, unexpected '
            f'{sorted(unexpected)[:10]}, wrong shapes {sorted(bad)[:10]}')
    try:
        theirs = infer_arch(sd, path)
    except ValueError as e:
        return head + f'{keys}. {e}'
    width = theirs.get('cortex_dims') or theirs['stages'][-1]['width']
    width = (f" (and the neck's and cls_head's in_channels={width})")
    if is_image:
        if name_of(theirs) == ours:
            return head + keys + '.'
        grid = ''
        if not (missing or unexpected) and bad <= {
                'initial_roi.weight', 'initial_embedding.weight'}:
            grid = (' Or, for frames that are not square, keep the arch and'
                    ' add token_grid=(cols, rows) to it, cols * rows = '
                    'num_tokens: the file\'s square token grid is then '
                    'resampled onto it.')
        return (head + f'it is an image SparseFormer of arch '
                f'{name_of(theirs)}. Set model.backbone.arch='
                f'{name_of(theirs)}{width}, or point '
                'model.backbone.pretrained at a checkpoint of arch '
                f'{ours}.{grid}')
    total = theirs['num_tokens']
    n = arch['num_tokens']
    same = (dict(normalize(theirs), num_tokens=0)
            == dict(normalize(arch), num_tokens=0))
    if same and total == n * replicates:
        return head + keys + '.'
    if same and total % n == 0:
        return (head + f'it is a VideoSparseFormer with {total} = {n} x '
                f'{total // n} tokens (replicates={total // n}). Set '
                f'model.backbone.replicates={total // n}, or start from '
                'the image checkpoint (pretrained2d=True) to inflate it '
                f'to replicates={replicates}.')
    if same:
        return (head + f'it is a VideoSparseFormer with {total} tokens, '
                f'not a multiple of the {n} tokens of arch {ours}: its '
                'num_tokens differs. Set model.backbone.arch to its '
                'image arch, with replicates = its tokens / num_tokens.')
    theirs_desc = {k: v for k, v in theirs.items() if k != 'num_tokens'}
    return (head + f'it is a VideoSparseFormer with {total} tokens and '
            f'{theirs_desc}. Set model.backbone.arch to that arch (with '
            f'num_tokens x replicates = {total}){width}.')


# ---------------------------------------------------------------------------
# Whole-model checkpoints: load_from, tools/test.py, tools/infer.py, the API
# ---------------------------------------------------------------------------
PARTIAL_HINT = {
    'runner': ('To load only what fits anyway (e.g. to start a new head), '
               'set partial_load=True in the config (--cfg-options '
               'partial_load=True).'),
    'test': 'To load only what fits anyway, pass --partial-load.',
    'api': 'To load only what fits anyway, pass partial=True.',
}


class CheckpointMismatchError(ValueError):
    """A checkpoint whose weights do not fit the model built from a config
    (the message says what to set)."""


def model_state_dict(ckpt, src: str = '<checkpoint>') -> StateDict:
    """The tensors of a loaded whole-model checkpoint (``state_dict`` of a
    Runner checkpoint, or a bare state dict), ``module.`` prefixes removed
    as mmengine's ``load_checkpoint`` does.

    Raises:
        ValueError: when the file holds no tensors (it is not a checkpoint).
    """
    return unwrap_state_dict(ckpt, src, wrappers=('state_dict', ))


def _key_summary(missing: set, unexpected: set, bad: list) -> str:
    parts = []
    if missing:
        parts.append(f'missing {sorted(missing)[:6]}')
    if unexpected:
        parts.append(f'unexpected {sorted(unexpected)[:6]}')
    if bad:
        parts.append('wrong shapes ' + ', '.join(
            f'{k} {tuple(a)} in the file vs {tuple(b)} in the model'
            for k, a, b in bad[:4]))
    return '; '.join(parts)


def image_mismatch_message(own: StateDict, sd: StateDict, path: str, *,
                           arch: dict, name_of: Callable[[dict], str]
                           ) -> Optional[str]:
    """``None`` if backbone weights ``sd`` fit an image SparseFormer with
    state dict ``own`` and ``arch``, else a one-line message saying what
    to change."""
    missing, unexpected = set(own) - set(sd), set(sd) - set(own)
    bad = [(k, sd[k].shape, own[k].shape) for k in sorted(sd)
           if k in own and sd[k].shape != own[k].shape]
    if not (missing or unexpected or bad):
        return None
    ours = name_of(arch)
    head = f'{path} does not fit SparseFormer(arch={ours}): '
    conv = sd.get(STEM_WEIGHT)
    if conv is not None and conv.dim() == 5:
        return (head + 'it is a VideoSparseFormer checkpoint. Use it with a '
                'video (mmaction2) config, or use the image checkpoint it '
                'was inflated from.')
    try:
        theirs = infer_arch(sd, path)
    except ValueError as e:
        return head + f'{_key_summary(missing, unexpected, bad)}. {e}'
    if name_of(theirs) == ours:
        return head + _key_summary(missing, unexpected, bad) + '.'
    width = theirs.get('cortex_dims') or theirs['stages'][-1]['width']
    return (head + f'it is a SparseFormer of arch {name_of(theirs)}. Set '
            f'model.backbone.arch={name_of(theirs)} (and the neck\'s and '
            f"head's in_channels={width}), or use a checkpoint of arch "
            f'{ours}.')


def _head_hint(key: str, theirs: tuple, ours: tuple) -> str:
    """What to set when a classifier's shape differs."""
    part = key.split('.')[0]
    if key.endswith(('fc.weight', 'fc_cls.weight', 'fc.bias',
                     'fc_cls.bias')) and theirs[1:] == ours[1:]:
        return (f'the checkpoint has {theirs[0]} classes and the model '
                f'{ours[0]}: set model.{part}.num_classes={theirs[0]}')
    if key.endswith(('fc.weight', 'fc_cls.weight')) and len(theirs) == 2:
        return (f'{key} maps width {theirs[1]} to {theirs[0]} outputs; set '
                f'model.{part}.in_channels={theirs[1]} and num_classes='
                f'{theirs[0]}')
    return f'{key} is {theirs} in the file and {ours} in the model'


def model_fit_message(model, sd: StateDict, path: str) -> Optional[str]:
    """``None`` if a whole-model state dict ``sd`` loads strictly into
    ``model`` (an ``ImageClassifier`` / ``Recognizer3D``; image weights
    for a ``VideoSparseFormer`` backbone count as inflated, as its load
    pre-hook does), else a one-line message saying what to set.

    ``model`` is read duck-typed (this module imports no model): a
    SparseFormer backbone has ``arch_settings``, ``arch_name`` and
    ``parse_arch``; a video one also ``ndim == 3`` and ``replicates``.
    """
    own = model.state_dict()
    backbone = getattr(model, 'backbone', None)
    sparse = backbone is not None and hasattr(backbone, 'arch_settings')
    sub = lambda d: OrderedDict((k[len('backbone.'):], v)  # noqa: E731
                                for k, v in d.items()
                                if k.startswith('backbone.'))
    sd = OrderedDict(sd)
    if sparse:
        own_bb, sd_bb = sub(own), sub(sd)
        video = getattr(backbone, 'ndim', 2) == 3
        if video:
            is_image = is_image_state_dict(sd_bb)
            cand = (inflate_image_state_dict(sd_bb, backbone.replicates)
                    if is_image else sd_bb)
            msg = video_mismatch_message(
                own_bb, cand, sd_bb, path, arch=backbone.arch_settings,
                replicates=backbone.replicates, is_image=is_image,
                name_of=backbone.arch_name, normalize=backbone.parse_arch)
            if msg is None and is_image:
                R = backbone.replicates
                heads = sorted(k for k in sd if k.startswith('head.'))[:2]
                msg = (f'{path} is an image SparseFormer checkpoint '
                       f'(head keys {heads}) '
                       'and the model a video one: the backbone would be '
                       'inflated but the head would not load. Inflate the '
                       'whole checkpoint: python tools/model_converters/'
                       f'inflate_to_video.py {path} OUT.pth --replicates '
                       f'{R}, and use OUT.pth; to train from these image '
                       f'weights instead, set model.backbone.pretrained='
                       f'{path} (and no load_from).')
            if msg:
                return msg
            for k in list(sd):  # the backbone fits: compare the rest
                if k.startswith('backbone.'):
                    del sd[k]
            own = OrderedDict((k, v) for k, v in own.items()
                              if not k.startswith('backbone.'))
        else:
            msg = image_mismatch_message(own_bb, sd_bb, path,
                                         arch=backbone.arch_settings,
                                         name_of=backbone.arch_name)
            if msg:
                return msg
    missing, unexpected = set(own) - set(sd), set(sd) - set(own)
    bad = [(k, sd[k].shape, own[k].shape) for k in sorted(sd)
           if k in own and sd[k].shape != own[k].shape]
    if not (missing or unexpected or bad):
        return None
    prefixes = sorted({k.split('.')[0] for k in sd})
    mine = sorted({k.split('.')[0] for k in own})
    if missing and unexpected and not set(prefixes) & set(mine):
        return (f'{path} does not fit the model: it holds {prefixes} '
                f'weights and the model has {mine}; it is a checkpoint of '
                'another kind of model (or another codebase).')
    if bad and not (missing or unexpected):
        hints = '; '.join(_head_hint(k, tuple(a), tuple(b))
                          for k, a, b in bad[:3])
        return f'{path} does not fit the model: {hints}.'
    return (f'{path} does not fit the model: '
            f'{_key_summary(missing, unexpected, bad)}.')


def without_partial_hint(msg: str) -> str:
    """A :func:`checkpoint_fit_error` message without its "To load only
    what fits anyway" hint (for the warning of a partial load)."""
    return msg.split(' To load only')[0]


def check_is_checkpoint(path: str) -> None:
    """Raise ``ValueError`` when ``path`` is not a file ``torch.save``
    wrote (a zip archive, or a legacy pickle), e.g. a text or log file,
    before unpickling would report it as a refused pickle."""
    import zipfile  # only here: a leaf module with few imports
    with open(path, 'rb') as f:
        start = f.read(16)
    if start[:1] == b'\x80' or zipfile.is_zipfile(path):
        return
    raise ValueError(f'{path} is not a checkpoint: not a file written by '
                     f'torch.save (it starts with {start!r}). Give the .pth '
                     'file (e.g. work_dirs/<config>/epoch_N.pth).')


def checkpoint_fit_error(model, path: str, where: str = 'runner'
                         ) -> Optional[str]:
    """Load ``path`` weights-only and return :func:`model_fit_message`
    with the hint of entry point ``where`` (a key of ``PARTIAL_HINT``)
    appended, or ``None`` when it fits.

    Raises:
        ValueError: when ``path`` is not a checkpoint.
    """
    check_is_checkpoint(path)
    sd = model_state_dict(load_weights_only(path), path)
    msg = model_fit_message(model, sd, path)
    return None if msg is None else f'{msg} {PARTIAL_HINT[where]}'


# ---------------------------------------------------------------------------
# init_cfg=dict(type='Pretrained'): what mmengine's non-strict load leaves out
# ---------------------------------------------------------------------------
def _pretrained_cfgs(init_cfg) -> list:
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return [c for c in cfgs
            if isinstance(c, dict) and c.get('type') == 'Pretrained']


def _layer_span(keys) -> str:
    """``'layers.0-5'`` style summary of the numbered blocks in ``keys``."""
    spans = {}
    for k in keys:
        m = re.match(r'(.*?layers)\.(\d+)\.', k)
        if m:
            spans.setdefault(m[1], set()).add(int(m[2]))
    return ', '.join(f'{name}.{min(ids)}-{max(ids)}'
                     for name, ids in sorted(spans.items())) or 'none'


def pretrained_init_error(model) -> Optional[str]:
    """``None`` unless an ``init_cfg`` of type ``Pretrained`` in ``model``
    would leave a parameter unloaded that must come from it: a frozen one
    (``requires_grad=False``) or one the model lists in its
    ``inherited_parameters()`` (e.g. a bootstrapped student's ViT blocks).
    mmengine's ``Pretrained`` init loads non-strictly, so such a parameter
    would stay random for the whole run; the message says what to set.

    Names are compared (a missing key); shapes are left to the module's
    load pre-hooks (e.g. a resized position embedding) and mmengine's log.
    """
    required = {n for n, p in model.named_parameters() if not p.requires_grad}
    inherited = getattr(model, 'inherited_parameters', None)
    if callable(inherited):
        required |= set(inherited())
    if not required:
        return None
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        for cfg in _pretrained_cfgs(getattr(module, 'init_cfg', None)):
            need = [k for k, _ in module.named_parameters()
                    if prefix + k in required]
            path = str(cfg.get('checkpoint') or '')
            if not need or '://' in path:
                continue
            where = f'model.{prefix}init_cfg'
            if not osp.isfile(osp.expanduser(path)):
                return (f'{where}.checkpoint={path} does not exist; it should '
                        f'hold the weights of model.{prefix or "*"} (e.g. '
                        f'{prefix}{need[0]}). Set {where}.checkpoint to '
                        'that file.')
            sd = model_state_dict(load_weights_only(osp.expanduser(path)),
                                  path)
            sub = cfg.get('prefix')
            if sub:
                sub = sub if sub.endswith('.') else sub + '.'
                sd = {k[len(sub):]: v for k, v in sd.items()
                      if k.startswith(sub)}
            missing = [k for k in need if k not in sd]
            if not missing:
                continue
            return (f"{where}=dict(type='Pretrained', checkpoint={path}) "
                    f'leaves {len(missing)} frozen or inherited parameter(s) '
                    f'unloaded (e.g. {prefix}{missing[0]}; the file has '
                    f'{_layer_span(sd)}, the model {_layer_span(need)}): '
                    "mmengine's Pretrained init loads non-strictly, so they "
                    'would stay random for the whole run. Use a checkpoint '
                    'that holds them, e.g. for a bootstrapped student '
                    'convert the teacher with the arch of the config '
                    '(python tools/model_converters/vit_to_sparseformer.py '
                    'TEACHER.pth OUT.pth --arch ARCH, or a custom arch with '
                    'its depth), or set the config\'s arch to the file\'s.')
    return None
