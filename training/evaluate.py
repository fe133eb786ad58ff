"""Quick box / mask AP of a trained checkpoint on a canvases split, with torchvision inference.

  python3 training/evaluate.py --arch fasternet_t0 --weights training/runs/fasternet_t0/model_final.pth \
      --data data/canvases_val [--limit 50] [--results dets.json]

AP follows pycocotools' algorithm (IoU 0.50:0.05:0.95, 101 recall points, area range 'all', 100
detections per image, greedy matching by score) re-implemented in numpy because pycocotools is not
packaged here; it is for checking training runs. The project's TypeScript `fasternet eval` on the
results JSON (--results, COCO format with compressed-RLE masks) is the reference number.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import threads  # noqa: E402,F401  (before torch: caps OpenBLAS/OpenMP threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from canvases import CanvasDataset, decode_rle  # noqa: E402
from models import build_model  # noqa: E402

IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)


def rle_string(mask):
    """uint8 (h, w) -> COCO compressed RLE string (maskApi.c rleEncode + rleToString)."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return ''.join(out)


def box_iou_xywh(d, g):
    if len(d) == 0 or len(g) == 0:
        return np.zeros((len(d), len(g)))
    dx1, dy1 = d[:, 0] + d[:, 2], d[:, 1] + d[:, 3]
    gx1, gy1 = g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]
    iw = np.clip(np.minimum(dx1[:, None], gx1[None]) - np.maximum(d[:, None, 0], g[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(dy1[:, None], gy1[None]) - np.maximum(d[:, None, 1], g[None, :, 1]), 0, None)
    inter = iw * ih
    union = (d[:, 2] * d[:, 3])[:, None] + (g[:, 2] * g[:, 3])[None] - inter
    return inter / union


def mask_iou(d, g):
    if len(d) == 0 or len(g) == 0:
        return np.zeros((len(d), len(g)))
    df = d.reshape(len(d), -1).astype(np.float32)
    gf = g.reshape(len(g), -1).astype(np.float32)
    inter = df @ gf.T
    union = df.sum(1)[:, None] + gf.sum(1)[None] - inter
    return inter / np.maximum(union, 1)


def average_precision(per_image, num_classes):
    """per_image: list of dicts with per-class lists: gt (n), det scores, IoU matrix (det x gt). Returns AP."""
    aps = []
    for c in range(1, num_classes + 1):
        n_gt = 0
        scores, matched = [], []
        for im in per_image:
            if c not in im:
                continue
            iou, sc, ng = im[c]
            n_gt += ng
            order = np.argsort(-sc, kind='mergesort')[:100]
            iou = iou[order]
            scores.append(sc[order])
            m = np.zeros((len(IOU_THRS), len(order)), bool)
            for t, thr in enumerate(IOU_THRS):
                taken = np.zeros(ng, bool)
                for di in range(len(order)):
                    best, best_g = min(thr, 1 - 1e-10), -1
                    for gi in range(ng):
                        if taken[gi] or iou[di, gi] < best:
                            continue
                        best, best_g = iou[di, gi], gi
                    if best_g >= 0:
                        taken[best_g] = True
                        m[t, di] = True
            matched.append(m)
        if n_gt == 0:
            continue
        sc = np.concatenate(scores) if scores else np.zeros(0)
        mt = np.concatenate(matched, axis=1) if matched else np.zeros((len(IOU_THRS), 0), bool)
        order = np.argsort(-sc, kind='mergesort')
        mt = mt[:, order]
        ap_t = []
        for t in range(len(IOU_THRS)):
            tp = np.cumsum(mt[t])
            fp = np.cumsum(~mt[t])
            rec = tp / n_gt
            prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            for i in range(len(prec) - 1, 0, -1):
                prec[i - 1] = max(prec[i - 1], prec[i])
            idx = np.searchsorted(rec, REC_THRS, side='left')
            q = np.array([prec[i] if i < len(prec) else 0.0 for i in idx])
            ap_t.append(q.mean())
        aps.append(ap_t)
    aps = np.array(aps)
    return dict(AP=float(aps.mean()), AP50=float(aps[:, 0].mean()), AP75=float(aps[:, 5].mean()))


@torch.no_grad()
def evaluate(model, data, device, limit=None, results=None):
    model.eval()
    n = len(data) if limit is None else min(limit, len(data))
    box_stats, mask_stats, dets_out = [], [], []
    t0 = time.time()
    for i in range(n):
        img, tgt = data[i]
        out = model([(img.float() / 255).to(device)])[0]
        image_id = int(tgt['image_id'])
        boxes = out['boxes'].cpu().numpy()
        d_xywh = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1) \
            if len(boxes) else np.zeros((0, 4))
        d_masks = (out['masks'][:, 0] > 0.5).cpu().numpy().astype(np.uint8)
        d_labels = out['labels'].cpu().numpy()
        d_scores = out['scores'].cpu().numpy()
        anns = data.by_image[image_id]
        g_xywh = np.array([a['bbox'] for a in anns], dtype=np.float64).reshape(-1, 4)
        g_masks = np.stack([decode_rle(a['segmentation']) for a in anns]) if anns else np.zeros((0, 1, 1))
        g_labels = np.array([a['category_id'] for a in anns])
        b, m = {}, {}
        for c in set(g_labels.tolist()) | set(d_labels.tolist()):
            di, gi = np.flatnonzero(d_labels == c), np.flatnonzero(g_labels == c)
            b[c] = (box_iou_xywh(d_xywh[di], g_xywh[gi]), d_scores[di], len(gi))
            m[c] = (mask_iou(d_masks[di], g_masks[gi]), d_scores[di], len(gi))
        box_stats.append(b)
        mask_stats.append(m)
        if results is not None:
            for k in range(len(d_scores)):
                dets_out.append(dict(image_id=image_id, category_id=int(d_labels[k]), score=float(d_scores[k]),
                                     bbox=[float(v) for v in d_xywh[k]],
                                     segmentation=dict(size=list(d_masks[k].shape), counts=rle_string(d_masks[k]))))
    if results is not None:
        with open(results, 'w') as f:
            json.dump(dets_out, f)
    return dict(images=n, s_per_image=(time.time() - t0) / max(n, 1),
                bbox=average_precision(box_stats, 10), segm=average_precision(mask_stats, 10))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', required=True)
    p.add_argument('--weights', required=True, help='model_final.pth (state dict) or checkpoint.pth')
    p.add_argument('--data', default='data/canvases_val')
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--head-channels', type=int, default=256)
    p.add_argument('--limit', type=int, default=None)
    p.add_argument('--results', default=None, help='write COCO detection results (bbox + RLE segm) here')
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(args.arch, args.image_size, args.head_channels)
    sd = torch.load(args.weights, map_location='cpu')
    model.load_state_dict(sd['model'] if 'model' in sd and 'iter' in sd else sd)
    print(json.dumps(evaluate(model.to(device), CanvasDataset(args.data), device, args.limit, args.results)))


if __name__ == '__main__':
    main()
