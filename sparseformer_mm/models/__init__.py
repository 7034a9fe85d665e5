from .backbones import *  # noqa: F401,F403
from .bootstrap import BootstrapDistiller  # noqa: F401
from .classifiers import (build_classifier, classifier_parts,  # noqa: F401
                          convert_sparseformer)
from .heads import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
