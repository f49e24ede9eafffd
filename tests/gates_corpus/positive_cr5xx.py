"""CR501-CR503 positives: remote code, torch.load without weights_only=True, unpickling."""
import pickle
import pickle as pk
from pickle import loads

import joblib
import numpy as np
import torch
import torch as th
from transformers import AutoModelForCausalLM
from torch import load as tload


def unsafe(path, trust, build):
    build(path, trust_remote_code=True)  # expect: CR501
    build(path, trust_remote_code=trust)  # not a loading call: the value is the callee's business
    AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust)  # expect: CR101 CR501
    build(path, **{"trust_remote_code": True})  # expect: CR501
    a = torch.load(path)  # expect: CR502
    b = th.load(path, map_location="cpu")  # expect: CR502
    c = tload(path, weights_only=False)  # expect: CR502
    with open(path, "rb") as fh:
        d = pickle.load(fh)  # expect: CR503
        e = pk.load(fh)  # expect: CR503
    f = loads(b"...")  # expect: CR503
    g = joblib.load(path)  # expect: CR503
    h = np.load(path, allow_pickle=True)  # expect: CR503
    return a, b, c, d, e, f, g, h


def dicts(model_args, load):
    kwargs = {"trust_remote_code": True, "torch_dtype": "auto"}  # expect: CR501
    more = dict(trust_remote_code=model_args.trust_remote_code)  # expect: CR501
    init = {"trust_remote_code": model_args.trust_remote_code}  # expect: CR501
    load(model_init_kwargs={"trust_remote_code": model_args.trust_remote_code})  # expect: CR501
    return load(init, **kwargs, **more)


def config_read(path, tc):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, trust_remote_code=tc.trust_remote_code)  # expect: CR501
