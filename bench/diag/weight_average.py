"""Diagnostic (bench/RESULTS.md, training): the last step's weights against moving averages of them.

Trains CONFIG for --steps with the trainer's own average off (``training.ema_steps: 0``), keeps exponential moving
averages of the weights with the time constants --taus (decay ``min(1 - 1/tau, (1 + step) / (10 + step))``, as
``plexloc.train.Trainer`` does), and every --every steps scores the weights and each average on one fixed test set
(--test-samples samples of the training simulation at --test-density, its own seed): validation loss, JI, lateral
RMSE and efficiency, and the median position error per axis (``offset_cal``). Prints a line per scoring and writes
them all to OUT.json.

    PYTHONPATH=src python bench/diag/weight_average.py examples/demo_2d.yaml /tmp/wa --steps 3000 --every 250 \
        --taus 50 200 500 --test-density 1.0
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from plexloc.config import load_config
from plexloc.config.training import TrainConfig
from plexloc.simulation.simulator import Simulator
from plexloc.train.trainer import Trainer, training_simulation, validation_set

KEYS = ("val_loss", "jaccard", "rmse_lat", "rmse_ax", "eff_lat", "eff_3d", "zscore_std_x", "zscore_std_y",
        "zscore_rsd_x", "zscore_rsd_y", "offset_cal_x", "offset_cal_y", "offset_cal_z", "sigma_cal_x", "sigma_cal_y")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out", help="run folder; the scores go to OUT.json")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--taus", type=int, nargs="+", default=[50, 200, 500])
    ap.add_argument("--test-density", type=float, default=None, help="emitters/µm² of the test set (default: the config's)")
    ap.add_argument("--test-samples", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config, TrainConfig)
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"ema_steps": 0})})
    test_cfg = cfg
    if a.test_density:
        test_cfg = cfg.model_copy(update={"emitters": cfg.emitters.model_copy(update={"density_per_um2": a.test_density})})
        test_cfg = test_cfg.model_copy(update={"training": test_cfg.training.model_copy(update={"seed": cfg.training.seed + 1})})
    results: list[dict] = []

    class Scored(Trainer):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.averages = {t: copy.deepcopy(self.model).requires_grad_(False) for t in a.taus}
            self.test_sim = Simulator(training_simulation(test_cfg))
            self.test = validation_set(test_cfg, self.test_sim, self.model.spec.window, n_samples=a.test_samples)

        def train_step(self):
            loss = super().train_step()
            with torch.no_grad():
                for tau, avg in self.averages.items():
                    decay = min(1 - 1 / tau, (1 + self.step) / (10 + self.step))
                    torch._foreach_lerp_(list(avg.parameters()), list(self.model.parameters()), 1 - decay)
            if self.step % a.every == 0:
                row = {"step": self.step}
                for name, net in [("weights", self.model)] + [(f"average{t}", m) for t, m in self.averages.items()]:
                    s = self.test.score(net, self.test_sim, threshold=self.config.training.detection_threshold)
                    row[name] = {k: s.get(k) for k in KEYS}
                self.model.train()
                results.append(row)
                print(self.step, " | ".join(
                    f"{n}: loss {v['val_loss']:.3f} JI {v['jaccard']:.2f} RMSE {v['rmse_lat']:.2f} E {v['eff_lat']:.2f} "
                    f"offset {v['offset_cal_x']:.1f}/{v['offset_cal_y']:.1f}" for n, v in row.items() if n != "step"), flush=True)
                with open(a.out + ".json", "w") as f:
                    json.dump({"config": a.config, "taus": a.taus, "test_density": a.test_density, "rows": results}, f, indent=1)
            return loss

    t0 = time.time()
    Scored(cfg, a.out, device="cpu").run(steps=a.steps)
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
