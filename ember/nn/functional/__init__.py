"""``ember.nn.functional``: stateless forms of the layers and losses (PyTorch names)."""
from ...ops.elementwise import gelu, relu, sigmoid, silu, tanh  # noqa: F401
from ...ops.movement import pad  # noqa: F401
from .activation import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
