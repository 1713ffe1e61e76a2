"""bind: frozen pretrained experts for text, image, audio, video and 3D, bound into one embedding space.

Quick use::

    import bind
    bind.list_encoders(modality="image")
    vectors = bind.embed(["a cat", "a truck"], encoder="minilm-l6.text")
"""
from .errors import (
                     AmbiguousModalityError,
                     BindError,
                     ConfigError,
                     InputError,
                     UnknownEncoderError,
                     WeightsUnavailableError,
)
from .experts.api import EmbedResult, embed
from .experts.cards import EncoderCard
from .experts.encoder import Encoder, collate_segments, pool_segments
from .experts.modality import Modality, infer_modality
from .experts.registry import (
                     EncoderInfo,
                     create_encoder,
                     get_backend,
                     get_card,
                     list_encoders,
                     register_backend,
                     register_encoder,
                     unregister_encoder,
                     weights_available,
)
from .index import FolderReport, Hit, Index
from .io.audio import Waveform
from .spaces import (
                     AnchorSpace,
                     CombinationBond,
                     DisplacementBond,
                     ExpertPath,
                     ParallelBond,
                     RoutedSpace,
                     Router,
                     SequentialBond,
                     SoundTrackFusion,
                     Space,
                     load_space,
)
from .spaces.projectors import Projector, ProjectorConfig, build_projector, load_projector

__version__ = "0.1.0"

__all__ = [
    "AnchorSpace", "CombinationBond", "DisplacementBond", "ExpertPath", "ParallelBond", "RoutedSpace", "Router",
    "SequentialBond", "SoundTrackFusion", "Space", "load_space", "FolderReport", "Hit", "Index",
    "AmbiguousModalityError", "BindError", "ConfigError", "EmbedResult", "Encoder", "EncoderCard", "EncoderInfo",
    "InputError", "Modality", "Projector", "ProjectorConfig", "build_projector", "load_projector", "UnknownEncoderError", "Waveform", "WeightsUnavailableError", "collate_segments",
    "create_encoder", "embed", "get_backend", "get_card", "infer_modality", "list_encoders", "pool_segments",
    "register_backend", "register_encoder", "unregister_encoder", "weights_available",
]
