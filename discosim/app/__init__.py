"""The application layer: the command line (:mod:`.cli`) and parameter studies (:mod:`.studies`)."""
