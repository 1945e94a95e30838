"""The one error every loader raises: it names the file, the tensor or key, and what was expected."""


class CheckpointError(ValueError):
    pass
