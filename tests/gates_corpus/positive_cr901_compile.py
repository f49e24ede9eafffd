"""CR901: parses, but the compiler rejects it."""

x = 1
return x  # expect: CR901
