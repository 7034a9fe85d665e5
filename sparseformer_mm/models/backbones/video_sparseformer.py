"""VideoSparseFormer: SparseFormer with spatiotemporal tube RoIs (mmaction2)."""
import os.path as osp
from typing import Dict, Optional, Union

import torch
from mmaction.registry import MODELS
from mmengine.logging import MMLogger
from torch import Tensor

# The module, not its function: checkpoint_fit imports the inflation rules
# from this package, and the two may be loaded in either order.
import sparseformer_mm.checkpoint_fit as checkpoint_fit
from ...checkpoint_formats import load_backbone_weights
from .inflation import (inflate_image_state_dict, is_image_state_dict,
                        resample_token_grid, token_grid_layout)
from .sparseformer import SparseFormer, _warn


@MODELS.register_module()
class VideoSparseFormer(SparseFormer):
    """SparseFormer on clips: each token's RoI is a spatiotemporal tube.

    Only what is video differs from :class:`SparseFormer`: the stem runs
    per frame (no temporal downsampling), tubes ``(x1, y1, t1, x2, y2, t2)``
    are adjusted with 6 values, sampling points carry ``(x, y, t)`` offsets
    and features are sampled trilinearly, and each of the ``N`` image tokens
    is replicated ``replicates`` times, replica ``k`` starting on the
    temporal segment ``[k/R, (k+1)/R]``. Any clip length ``T >= 1`` works.

    Image weights are inflated whenever they are loaded (a load_state_dict
    pre-hook; the rules are in :mod:`.inflation`), so ``pretrained``,
    ``init_cfg=dict(type='Pretrained')``, ``load_from`` and a plain
    ``load_state_dict`` all accept them. Through ``pretrained``, square-grid
    image weights are also resampled onto an arch's ``token_grid``.

    Args:
        arch (str | dict): as :class:`SparseFormer` (``N`` image tokens).
        replicates (int): token inflation ``R``; the model has ``N*R``
            tokens. Defaults to 8.
        pretrained (str, optional): an image (or video) SparseFormer
            checkpoint loaded by :meth:`init_weights`, strictly, with a
            message saying what to set when it does not fit: an mmpretrain
            checkpoint of ours or a converted released one.
        pretrained2d (bool): accept 2-D weights from ``pretrained`` (and
            inflate them); if False the checkpoint must already be a video
            one. Defaults to True.
        **kwargs: other :class:`SparseFormer` arguments.

    Input ``(B, 3, T, H, W)``; output ``(tokens,)`` of ``(B, N*R, C)``.
    """
    ndim = 3
    input_layout = '(B, 3, T, H, W)'
    _layout_hint = (" In mmaction2 configs use FormatShape(input_format="
                    "'NCTHW') and data_preprocessor format_shape='NCTHW'.")

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 replicates: int = 8,
                 pretrained: Optional[str] = None,
                 pretrained2d: bool = True,
                 **kwargs):
        if isinstance(replicates, bool) or not isinstance(replicates, int) \
                or replicates < 1:
            raise ValueError(f'model.backbone.replicates must be a positive '
                             f'integer (tubes per image token), got '
                             f'{replicates!r}')
        super().__init__(arch=arch, replicates=replicates, **kwargs)
        self.pretrained = pretrained
        self.pretrained2d = pretrained2d
        self._warned_short_clip = False
        self.register_load_state_dict_pre_hook(_inflate_on_load)

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        if x.shape[2] < self.replicates and not self._warned_short_clip:
            # Segments thinner than a frame put tube centres outside the
            # frame range, where zero padding weakens the sampled features.
            _warn(f'clip of {x.shape[2]} frames is shorter than replicates='
                  f'{self.replicates}; use clips of at least R frames.')
            if not torch.compiler.is_compiling():  # see _check_loss_scale
                self._warned_short_clip = True

    def load_image_weights(self, path: str) -> None:
        """Load (and, for image weights, inflate) a checkpoint, strictly,
        with a message saying what to set when it does not fit."""
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'VideoSparseFormer pretrained checkpoint {path} not found. '
                'Point model.backbone.pretrained at an image SparseFormer '
                'checkpoint (train one with configs/sparseformer/ or convert '
                'the released weights with tools/model_converters/'
                'sparseformer_to_mm.py), or set it to None to train from '
                'scratch.')
        sd = load_backbone_weights(path)
        is_image = is_image_state_dict(sd)
        if is_image and not self.pretrained2d:
            raise ValueError(f'{path} holds image weights; set '
                             'model.backbone.pretrained2d=True to '
                             'inflate them.')
        grid = self.arch_settings['token_grid']
        resampled = token_grid_layout(sd, grid) if is_image else None
        if resampled:
            sd = resample_token_grid(sd, grid)
        cand = inflate_image_state_dict(sd, self.replicates) if is_image \
            else sd
        mismatch = checkpoint_fit.video_mismatch_message(
            self.state_dict(), cand, sd, path, arch=self.arch_settings,
            replicates=self.replicates, is_image=is_image,
            name_of=self.arch_name, normalize=self.parse_arch)
        if mismatch:
            raise ValueError(mismatch)
        self.load_state_dict(sd, strict=True)
        MMLogger.get_current_instance().info(
            f'VideoSparseFormer: loaded '
            f'{"inflated image" if is_image else "video"} weights from '
            f'{path} (R={self.replicates})' +
            (f'; token_grid: {resampled}' if resampled else ''))

    def init_weights(self) -> None:
        if self.pretrained:
            self.load_image_weights(self.pretrained)
        else:
            super().init_weights()


def _inflate_on_load(module: VideoSparseFormer, state_dict: Dict[str, Tensor],
                     prefix: str, *args) -> None:
    """load_state_dict pre-hook: image backbone weights under ``prefix``
    are replaced by their inflation (as mmpretrain's ViT adapts position
    embeddings on load)."""
    if not is_image_state_dict(state_dict, prefix):
        return
    own = {k[len(prefix):]: state_dict.pop(k) for k in list(state_dict)
           if k.startswith(prefix)}
    for key, value in inflate_image_state_dict(own,
                                               module.replicates).items():
        state_dict[prefix + key] = value

