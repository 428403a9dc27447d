"""The registry of claims that ``discosim validate`` checks (THEORY §5-§9).

Importing this package registers the claims of :mod:`.volumes`, :mod:`.diffusion` and
:mod:`.smoothing` and :mod:`.precision`, in that order (the order of the report). See :mod:`.core` for rows, rules and
their resolution.
"""

from discosim.validation.rules import (CLAIMS, Z_POWER, Z_VERDICT, Claim, ClaimOutput, Context, Row, at_least, at_most,
                   claim, claim_names, close_to, family_false_alarm, run_claims)
from discosim.validation import volumes  # noqa: F401  (registers; order = report order)
from discosim.validation import diffusion  # noqa: F401
from discosim.validation import smoothing  # noqa: F401
from discosim.validation import precision  # noqa: F401

__all__ = ["CLAIMS", "Z_POWER", "Z_VERDICT", "Claim", "ClaimOutput", "Context", "Row", "at_least",
           "at_most", "claim", "claim_names", "close_to", "family_false_alarm", "run_claims"]
