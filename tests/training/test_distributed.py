import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_torchrun_processes_train_the_same_model(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker), str(tmp_path)],
                   check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["epochs"] == ranks[1]["epochs"] >= 1
    assert ranks[0]["state"] == ranks[1]["state"]  # parameters and BatchNorm statistics agree
    assert ranks[0]["val_probs"] == ranks[1]["val_probs"]
