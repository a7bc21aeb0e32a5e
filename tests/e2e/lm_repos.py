"""Repositories of the tiny LMs (make_tiny_lm.py) for the generation tests that need a queue in
front of the engine: tinylm_one is tinylm_slow (a few milliseconds a token) decoding one
sequence at a time, so the others wait for a place in the batch."""
import json
import os
import shutil
import subprocess

from conftest import PYTHON

HERE = os.path.dirname(os.path.abspath(__file__))


def one_at_a_time_repo(root):
    repo = os.path.join(str(root), "lm")
    res = subprocess.run([PYTHON, os.path.join(HERE, "make_tiny_lm.py"), repo], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    shutil.copytree(os.path.join(repo, "tinylm_slow"), os.path.join(repo, "tinylm_one"))
    cfg_path = os.path.join(repo, "tinylm_one", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["generate"]["max_sequences"] = 1
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return repo
