"""A CLIP-style head: an image embedding, classified against class text
embeddings read from a file (no text tower runs)."""
import os.path as osp
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...checkpoint_safety import load_weights_only


@MODELS.register_module()
class ZeroShotClsHead(ClsHead):
    """Project pooled features to an embedding; score classes by cosine
    similarity with fixed class embeddings.

    ``forward`` returns the image embedding (what CLIP's visual tower
    returns, e.g. 512-d for ViT-B/16); ``predict`` scores it against
    ``class_embeddings``; ``loss`` (fine-tuning with labels) uses the same
    scores.

    Args:
        in_channels (int): pooled feature width.
        embed_dims (int): embedding width.
        class_embeddings (str, optional): a ``.pth`` / ``.pt`` file holding a
            ``(num_classes, embed_dims)`` tensor (or a dict with it under
            ``'embeddings'``), e.g. CLIP text embeddings of class prompts,
            one finite row per class in label order, loaded weights-only.
            Needed by ``predict`` and ``loss``.
        num_classes (int, optional): the dataset's classes; the file must
            have that many rows. Required with ``class_embeddings`` (it is
            what the file is checked against, and what the label checks
            read).
        logit_scale (float): cosine similarities are multiplied by it.
            Defaults to 100 (CLIP's trained scale).
        bias (bool): a projection bias (CLIP has none). Defaults to False.
        **kwargs: other ``ClsHead`` arguments (``loss``, ``topk``, ...).
    """

    def __init__(self, in_channels: int, embed_dims: int,
                 class_embeddings: Optional[str] = None,
                 num_classes: Optional[int] = None,
                 logit_scale: float = 100.0, bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fc = nn.Linear(in_channels, embed_dims, bias=bias)
        self.logit_scale = logit_scale
        self.class_embeddings_file = class_embeddings
        self.register_buffer('class_embeddings', None, persistent=False)
        self.num_classes = num_classes
        if class_embeddings is not None:
            self.class_embeddings = self._read(class_embeddings, embed_dims,
                                               num_classes)

    @staticmethod
    def _read(path: str, embed_dims: int,
              num_classes: Optional[int]) -> torch.Tensor:
        """The file's rows, normalised, checked against ``num_classes``."""
        if num_classes is None:
            raise ValueError(
                f'ZeroShotClsHead with class_embeddings={path!r} needs '
                'num_classes: set model.head.num_classes to the number of '
                "classes of the dataset (the file's rows are checked "
                'against it).')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'class_embeddings file {path} not found: write a '
                f'({num_classes}, {embed_dims}) tensor of class text '
                'embeddings with torch.save.')
        data = load_weights_only(path)
        if isinstance(data, dict):
            data = data.get('embeddings')
        if not torch.is_tensor(data) or data.dim() != 2 \
                or data.shape[1] != embed_dims:
            got = tuple(data.shape) if torch.is_tensor(data) else type(data)
            raise ValueError(
                f'{path} must hold a (num_classes, {embed_dims}) tensor (or '
                f"a dict with it under 'embeddings'); got {got}.")
        if data.shape[0] != num_classes:
            raise ValueError(
                f'{path} holds {data.shape[0]} class embeddings (rows) but '
                f'model.head.num_classes={num_classes}: write one row per '
                f'class of the dataset, in label order ({num_classes} rows), '
                f'or, if the dataset has {data.shape[0]} classes, set '
                f'model.head.num_classes={data.shape[0]}.')
        bad = (~torch.isfinite(data)).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f'{path}: class embedding row(s) {bad[:10]} (label order) '
                'hold NaN or inf values; every class would score NaN against '
                'them. Recompute those rows.')
        return F.normalize(data.float(), dim=-1)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The image embedding ``(B, embed_dims)``."""
        return self.fc(self.pre_logits(feats))

    def scores(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Scaled cosine similarity with every class ``(B, num_classes)``."""
        if self.class_embeddings is None:
            raise ValueError(
                'ZeroShotClsHead needs class_embeddings (a file of class '
                'text embeddings) to classify; set model.head.'
                'class_embeddings.')
        emb = F.normalize(self(feats).float(), dim=-1)
        return self.logit_scale * emb @ self.class_embeddings.to(emb).t()

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        return self._get_loss(self.scores(feats), data_samples, **kwargs)

    def predict(self, feats: Tuple[torch.Tensor],
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        return self._get_predictions(self.scores(feats), data_samples)
