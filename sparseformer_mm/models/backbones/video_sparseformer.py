"""VideoSparseFormer: SparseFormer with spatiotemporal tube RoIs (mmaction2)."""
import os.path as osp
import warnings
from typing import Dict, Optional, Union

import torch
from mmaction.registry import MODELS
from mmengine.logging import MMLogger
from torch import Tensor

from ..layers import grid_init_rois
from .sparseformer import SparseFormer


def tube_rois(boxes: Tensor, replicates: int) -> Tensor:
    """Inflate ``(N, 4)`` boxes into ``(N*R, 6)`` tubes, replica-major.

    Replica ``k`` keeps every box and gets the temporal segment
    ``[k/R, (k+1)/R]``; corners are ``(x1, y1, t1, x2, y2, t2)``.
    """
    N = boxes.shape[0]
    tubes = []
    for k in range(replicates):
        t1 = boxes.new_full((N, 1), k / replicates)
        t2 = boxes.new_full((N, 1), (k + 1) / replicates)
        tubes.append(torch.cat([boxes[:, :2], t1, boxes[:, 2:], t2], dim=1))
    return torch.cat(tubes, dim=0)


def _xy_to_xyt(t: Tensor, num_groups: int) -> Tensor:
    """Insert a zero ``t`` after every ``(x, y)`` pair along dim 0."""
    pairs = t.reshape(num_groups, 2, *t.shape[1:])
    zeros = pairs.new_zeros((num_groups, 1) + tuple(t.shape[1:]))
    return torch.cat([pairs, zeros], dim=1).reshape(num_groups * 3,
                                                    *t.shape[1:])


def inflate_image_state_dict(state_dict: Dict[str, Tensor],
                             replicates: int) -> Dict[str, Tensor]:
    """Image SparseFormer backbone weights -> VideoSparseFormer weights.

    Keys are backbone-level (no ``backbone.`` prefix). Following the
    reference: the stem conv gains a time axis of 1; embeddings are repeated
    R times (replica-major); replica k of each RoI gets the temporal segment
    ``[k/R, (k+1)/R]``; offset weights and biases map every point ``(x, y)``
    to ``(x, y, 0)``; RoI-adjust rows ``(x, y, w, h)`` become
    ``(x, y, 0, w, h, 0)``. Everything else is copied.
    """
    out = {}
    for key, value in state_dict.items():
        if key == 'feat_extractor.conv1.weight':
            value = value.unsqueeze(2)
        elif key == 'initial_embedding.weight':
            value = value.repeat(replicates, 1)
        elif key == 'initial_roi.weight':
            value = tube_rois(value, replicates)
        elif key.endswith(('roi_offset_module.1.weight', 'roi_offset_bias')):
            value = _xy_to_xyt(value, value.shape[0] // 2)
        elif key.endswith('roi_adjust_module.1.weight'):
            value = _xy_to_xyt(value, 2)
        out[key] = value
    return out


def backbone_state_dict(ckpt: dict, src: str = '<checkpoint>'):
    """Backbone-level weights from an mmpretrain / mmaction2 checkpoint or a
    released flat SparseFormer state dict."""
    from ...utils.ckpt_convert import prefixed_state_dict
    return {k[len('backbone.'):]: v
            for k, v in prefixed_state_dict(ckpt, src).items()
            if k.startswith('backbone.')}


@MODELS.register_module()
class VideoSparseFormer(SparseFormer):
    """SparseFormer on clips: each token's RoI is a spatiotemporal tube.

    The stem runs per frame (no temporal downsampling), tubes
    ``(x1, y1, t1, x2, y2, t2)`` are adjusted with 6 values, sampling points
    carry ``(x, y, t)`` offsets and features are sampled trilinearly. Each of
    the ``N`` image tokens is replicated ``replicates`` times, replica ``k``
    starting on the temporal segment ``[k/R, (k+1)/R]``. Any clip length
    ``T >= 1`` works.

    Args:
        arch (str | dict): as :class:`SparseFormer` (``N`` image tokens).
        replicates (int): token inflation ``R``; the model has ``N*R``
            tokens. Defaults to 8.
        pretrained (str, optional): an image (or video) SparseFormer
            checkpoint loaded by :meth:`init_weights`: an mmpretrain
            checkpoint of ours or a converted released one. Image weights
            are inflated (like ``pretrained2d`` in mmaction2's Swin3D).
        pretrained2d (bool): inflate 2-D weights from ``pretrained``; if
            False the checkpoint must already be a video one.
            Defaults to True.
        **kwargs: other :class:`SparseFormer` arguments.

    Input ``(B, 3, T, H, W)``; output ``(tokens,)`` of ``(B, N*R, C)``.
    """
    ndim = 3

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 replicates: int = 8,
                 pretrained: Optional[str] = None,
                 pretrained2d: bool = True,
                 **kwargs):
        if replicates < 1:
            raise ValueError(f'replicates must be >= 1, got {replicates}')
        self.replicates = replicates
        self.pretrained = pretrained
        self.pretrained2d = pretrained2d
        super().__init__(arch=arch, **kwargs)

    input_layout = '(B, 3, T, H, W)'
    _layout_hint = (" In mmaction2 configs use FormatShape(input_format="
                    "'NCTHW') and data_preprocessor format_shape='NCTHW'.")

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        if x.shape[2] < self.replicates and not self._warned_short_clip:
            # Segments thinner than a frame put tube centres outside the
            # frame range, where zero padding weakens the sampled features.
            warnings.warn(
                f'clip of {x.shape[2]} frames is shorter than replicates='
                f'{self.replicates}; use clips of at least R frames.')
            self._warned_short_clip = True

    _warned_short_clip = False

    @property
    def num_total_tokens(self) -> int:
        return self.num_tokens * self.replicates

    def initial_rois(self) -> Tensor:
        return tube_rois(grid_init_rois(self.num_tokens), self.replicates)

    def load_image_weights(self, path: str) -> None:
        """Load (and, for image weights, inflate) a checkpoint, strictly."""
        from ...checkpoint_safety import load_weights_only
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'VideoSparseFormer pretrained checkpoint {path} not found. '
                'Point model.backbone.pretrained at an image SparseFormer '
                'checkpoint (train one with configs/sparseformer/ or convert '
                'the released weights with tools/model_converters/'
                'sparseformer_to_mm.py), or set it to None to train from '
                'scratch.')
        sd = backbone_state_dict(load_weights_only(path), src=path)
        conv = sd.get('feat_extractor.conv1.weight')
        is_image = conv is not None and conv.dim() == 4
        if is_image and not self.pretrained2d:
            raise ValueError(f'{path} holds image weights; set '
                             'model.backbone.pretrained2d=True to '
                             'inflate them.')
        if is_image:
            sd_video = inflate_image_state_dict(sd, self.replicates)
        else:
            sd_video = sd
        mismatch = self._mismatch(sd, sd_video, path, is_image)
        if mismatch:
            raise ValueError(mismatch)
        self.load_state_dict(sd_video, strict=True)
        MMLogger.get_current_instance().info(
            f'VideoSparseFormer: loaded '
            f'{"inflated image" if is_image else "video"} weights from '
            f'{path} (R={self.replicates})')

    @classmethod
    def arch_name(cls, arch: dict) -> str:
        """``'tiny'`` etc. for a released arch, else the dict as text."""
        names = [k for k, v in cls.arch_zoo.items() if v == arch]
        return repr(max(names, key=len)) if names else str(arch)

    def _mismatch(self, sd: Dict[str, Tensor], cand: Dict[str, Tensor],
                  path: str, is_image: bool) -> Optional[str]:
        """``None`` if ``cand`` (``sd`` as video weights) fits this model,
        else an error message saying what to change."""
        from ...utils.ckpt_convert import infer_arch
        own = self.state_dict()
        missing, unexpected = set(own) - set(cand), set(cand) - set(own)
        bad = {k for k in cand if k in own and cand[k].shape != own[k].shape}
        if not (missing or unexpected or bad):
            return None
        ours = self.arch_name(self.arch_settings)
        head = (f'{path} does not fit VideoSparseFormer(arch={ours}, '
                f'replicates={self.replicates}): ')
        keys = (f'missing {sorted(missing)[:10]}, unexpected '
                f'{sorted(unexpected)[:10]}, wrong shapes {sorted(bad)[:10]}')
        try:
            theirs = infer_arch(sd, path)
        except ValueError as e:
            return head + f'{keys}. {e}'
        width = (f" (and the neck's and cls_head's in_channels="
                 f"{theirs['cortex_dims']})")
        if is_image:
            return (head + f'it is an image SparseFormer of arch '
                    f'{self.arch_name(theirs)}. Set model.backbone.arch='
                    f'{self.arch_name(theirs)}{width}, or point '
                    'model.backbone.pretrained at a checkpoint of arch '
                    f'{ours}.')
        total = theirs['num_tokens']
        n = self.num_tokens
        same = {k: v for k, v in theirs.items() if k != 'num_tokens'} == {
            k: v for k, v in self.arch_settings.items() if k != 'num_tokens'}
        if same and total == n * self.replicates or \
                is_image and theirs == self.arch_settings:
            return head + keys + '.'
        if same and total % n == 0:
            return (head + f'it is a VideoSparseFormer with {total} = {n} x '
                    f'{total // n} tokens (replicates={total // n}). Set '
                    f'model.backbone.replicates={total // n}, or start from '
                    'the image checkpoint (pretrained2d=True) to inflate it '
                    f'to replicates={self.replicates}.')
        if same:
            return (head + f'it is a VideoSparseFormer with {total} tokens, '
                    f'not a multiple of the {n} tokens of arch {ours}: its '
                    'num_tokens differs. Set model.backbone.arch to its '
                    'image arch, with replicates = its tokens / num_tokens.')
        theirs_desc = {k: v for k, v in theirs.items() if k != 'num_tokens'}
        return (head + f'it is a VideoSparseFormer with {total} tokens and '
                f'{theirs_desc}. Set model.backbone.arch to that arch (with '
                f'num_tokens x replicates = {total}){width}.')

    def init_weights(self) -> None:
        if self.pretrained:
            self.load_image_weights(self.pretrained)
        else:
            super().init_weights()
