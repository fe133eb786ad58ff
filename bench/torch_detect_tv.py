#!/usr/bin/python3
"""torchvision 0.14 maskrcnn_resnet50_fpn latency on one image (the reference for `fasternet bench detect`).

  /usr/bin/python3 bench/torch_detect_tv.py IMAGE [--runs N] [--threads T] [--score-thr S]

Random weights (timing does not depend on them except through the detection count: --score-thr 0 makes every
image give detections_per_img = 100 masks, as `fasternet bench detect --score-thr 0` does). Prints JSON with the
median end-to-end ms (transform + backbone + RPN + RoI heads + postprocess incl. mask paste) and peak RSS.
"""
import argparse
import json
import resource
import time

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import maskrcnn_resnet50_fpn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('image')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--score-thr', type=float, default=0.05)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=a.score_thr).eval()
    img = torch.from_numpy(np.asarray(Image.open(a.image).convert('RGB')).copy()).permute(2, 0, 1).float().div(255)
    times, n = [], 0
    with torch.no_grad():
        for r in range(a.runs + 1):
            t0 = time.perf_counter()
            out = model([img])[0]
            masks = out['masks'] > 0.5
            dt = (time.perf_counter() - t0) * 1000
            if r:
                times.append(dt)
            n = int(masks.shape[0])
    print(json.dumps({'framework': f'torch {torch.__version__} torchvision maskrcnn_resnet50_fpn', 'threads': a.threads,
                      'runs': a.runs, 'detections': n, 'ms_median': float(np.median(times)), 'ms_min': min(times),
                      'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == '__main__':
    main()
