"""Bootstrapping a SparseFormer from a pre-trained ViT, without labels
(Gao et al., "Bootstrapping SparseFormers from Vision Foundation Models",
CVPR 2024)."""
import os.path as osp
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from torch import Tensor

from ..checkpoint_formats import unwrap_state_dict
from ..compat import load_weights_only
from .backbones import SparseFormer


@MODELS.register_module()
class BootstrapDistiller(BaseModel):
    """A SparseFormer student learns the final representation of a frozen
    ViT teacher; labels are never read.

    The student is an ``ImageClassifier`` whose last stage holds the ViT's
    later blocks (``tools/model_converters/vit_to_sparseformer.py`` makes
    its initial weights from the teacher's checkpoint). Training aligns the
    student's final representation (the neck's output: the final LayerNorm
    of the class token) with the teacher's on the same images. The
    inherited blocks that came from the ViT's last third are frozen with
    the final norm and head, the rest of the inherited blocks are tuned,
    the focusing layers learn from scratch. ``predict`` is the student's,
    through the teacher's own head (a classifier, or a CLIP projection
    scored against class text embeddings).

    Args:
        student (dict): the student ``ImageClassifier`` config.
        teacher (dict): the teacher model config: an mmpretrain
            ``ImageClassifier`` (its ``extract_feat`` is the representation,
            e.g. a ``VisionTransformer`` with ``out_type='cls_token'``) or a
            ``TimmClassifier`` (timm's ``pre_logits``).
        teacher_checkpoint (str): teacher weights (loaded weights-only,
            strictly). Required for training: without it the student would
            learn a random teacher's representation.
        frozen_blocks (int, optional): how many of the student's last
            blocks stay frozen. Defaults to half of the inherited blocks
            (the ViT's last third).
        loss (str): ``'mse'``, ``'smooth_l1'`` or ``'cosine'`` (1 - cosine
            similarity). Defaults to 'mse'.
        data_preprocessor (dict, optional): mmpretrain's
            ``ClsDataPreprocessor`` config.
        init_cfg (dict, optional): mmengine init config.
    """

    LOSSES = ('mse', 'smooth_l1', 'cosine')

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 teacher_checkpoint: Optional[str] = None,
                 frozen_blocks: Optional[int] = None,
                 loss: str = 'mse',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ClsDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if loss not in self.LOSSES:
            raise ValueError(f"loss '{loss}' is not one of {self.LOSSES}")
        self.loss_type = loss
        self.student = MODELS.build(student)
        self.teacher = MODELS.build(teacher)
        self.teacher_checkpoint = teacher_checkpoint
        backbone = self.student.backbone
        if not isinstance(backbone, SparseFormer) \
                or backbone.cls_token_layer is None:
            raise ValueError('the student must be a SparseFormer whose arch '
                             'inserts a class token before the inherited '
                             "blocks (e.g. arch='btsp-augreg-base').")
        inherited = list(range(backbone.cls_token_layer,
                               len(backbone.layers)))
        if frozen_blocks is None:
            frozen_blocks = len(inherited) // 2
        if not 0 <= frozen_blocks <= len(inherited):
            raise ValueError(f'frozen_blocks={frozen_blocks}: the student '
                             f'has {len(inherited)} inherited blocks.')
        self.inherited_layers = inherited
        self.frozen_layers = inherited[len(inherited) - frozen_blocks:]
        frozen = [backbone.layers[i] for i in self.frozen_layers]
        frozen += [m for m in (self.student.neck, self.student.head)
                   if m is not None]
        for module in frozen + [self.teacher]:
            for p in module.parameters():
                p.requires_grad_(False)

    def inherited_parameters(self) -> List[str]:
        """The student's parameters that come from the ViT: its inherited
        blocks, the neck (final norm) and the head. The student's
        ``init_cfg`` checkpoint must hold them (``CheckpointLoadHook``
        stops a run whose checkpoint lacks one)."""
        blocks = tuple(f'student.backbone.layers.{i}.'
                       for i in self.inherited_layers)
        return [n for n, _ in self.named_parameters()
                if n.startswith(blocks + ('student.neck.', 'student.head.'))]

    def init_weights(self) -> None:
        path = self.teacher_checkpoint
        if not path:
            raise ValueError(
                'model.teacher_checkpoint is not set: the teacher would be '
                'randomly initialised and the student would learn a random '
                "representation. Set model.teacher_checkpoint to the "
                "teacher's weights (the ViT the student's init_cfg "
                'checkpoint was converted from).')
        if '://' not in path and not osp.isfile(osp.expanduser(path)):
            raise FileNotFoundError(
                f"model.teacher_checkpoint={path}: the teacher's checkpoint "
                "does not exist. Set model.teacher_checkpoint to the "
                "teacher's weights (the ViT the student's init_cfg "
                'checkpoint was converted from).')
        super().init_weights()
        state = unwrap_state_dict(load_weights_only(osp.expanduser(path)),
                                  path, wrappers=('state_dict', ))
        self.teacher.load_state_dict(state, strict=True)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # no dropout, drop path or BN updates
        return self

    def teacher_representation(self, inputs: Tensor) -> Tensor:
        """The frozen teacher's final representation ``(B, D)``."""
        model = getattr(self.teacher, 'model', None)
        if model is not None and hasattr(model, 'forward_head'):  # timm
            return model.forward_head(model.forward_features(inputs),
                                      pre_logits=True)
        return self.teacher.extract_feat(inputs)[-1]

    def student_representation(self, inputs: Tensor) -> Tensor:
        """The student's final representation ``(B, D)``."""
        return self.student.extract_feat(inputs)[-1]

    def alignment_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        if self.loss_type == 'cosine':
            return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
        if self.loss_type == 'smooth_l1':
            return F.smooth_l1_loss(student, teacher)
        return F.mse_loss(student, teacher)

    def forward(self, inputs: Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            with torch.no_grad():
                target = self.teacher_representation(inputs)
            return dict(loss_align=self.alignment_loss(
                self.student_representation(inputs), target.detach()))
        return self.student(inputs, data_samples, mode=mode)
