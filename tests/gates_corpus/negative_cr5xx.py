"""CR5xx negatives: safe forms, and the unsafe forms as text only."""
import json

import numpy as np
import torch


def safe(path, build):
    # torch.load(path)  and  pickle.load(fh)  and  trust_remote_code=True
    build(path, trust_remote_code=False)
    state = torch.load(path, weights_only=True, map_location="cpu")
    arr = np.load(path)
    cfg = json.load(open(path))
    msg = "never call torch.load(path) or pickle.load(fh) on a download"
    return state, arr, cfg, msg


def round_trip(obj):
    """A test's own object through pickle and back: nothing is read from outside the process."""
    import pickle

    copy = pickle.loads(pickle.dumps(obj))
    settings = {"trust_remote_code": False, "revision": "main"}
    record = {"trust_remote_code": obj.trust_remote_code}  # a record of the setting, passed to nothing
    return copy, settings, dict(trust_remote_code=None), record


def test_loader_passes_the_flag(mock_from_pretrained):
    """A mock's assertion compares the keywords a call received; it passes nothing on."""
    mock_from_pretrained.assert_called_once_with("test/model", trust_remote_code=True)
