"""``ember.nn``: Module, Parameter, layers, losses, initialization (PyTorch names)."""
from .parameter import Parameter
from .module import Module, StateDictError
from .container import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from . import functional, init, utils  # noqa: F401
