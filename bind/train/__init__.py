"""Training: projectors trained on cached expert features (imports the library; the library never imports this).

The losses need only torch; the Lightning modules, data modules and the ``bind train`` entry point live in
this package's other modules and are the only code in bind that imports lightning.
"""
from .losses import AlignmentLoss, InfoNCE, IntraLoss, StructureLoss, fusemix, js_divergence

__all__ = ["AlignmentLoss", "InfoNCE", "IntraLoss", "StructureLoss", "fusemix", "js_divergence"]
