from .backbones import *  # noqa: F401,F403
from .classifiers import build_classifier, convert_sparseformer  # noqa: F401
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
