"""CR901: a syntax error is a gate failure, not a crash."""


def broken(:  # expect: CR901
    pass
