"""Train Mask R-CNN (FasterNet or ResNet50 backbone, from scratch) on Fashion-MNIST canvases.

  python3 training/train.py --arch fasternet_t0 --data training/data/canvases_train --iters 20000 \
      --out training/runs/fasternet_t0

Writes <out>/config.json, <out>/log.jsonl (one line per logged iteration), <out>/checkpoint.pth (model,
optimizer, scheduler, iteration: resumable with --resume) and, at the end, <out>/model_final.pth: the bare
state dict (torch.save zip format, torchvision key names) that the project's converter reads.
"""
import argparse
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import threads  # noqa: E402,F401  (before torch: caps OpenBLAS/OpenMP threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from canvases import CanvasDataset  # noqa: E402
from models import build_model  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', required=True, help='fasternet_t0 | fasternet_t1 | resnet50')
    p.add_argument('--data', required=True, help='split folder with images/ and annotations.json')
    p.add_argument('--out', required=True)
    p.add_argument('--iters', type=int, default=20000)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--lr', type=float, default=3e-4, help='AdamW peak learning rate')
    p.add_argument('--weight-decay', type=float, default=1e-4)
    p.add_argument('--warmup', type=int, default=500, help='linear warm-up iterations, then cosine decay to 1%%')
    p.add_argument('--clip', type=float, default=10.0, help='gradient norm clip')
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--head-channels', type=int, default=256,
                   help="FPN / RPN / mask-head width (256 = torchvision's; 128 trains ~2x faster on CPU)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--device', default='auto', help="'auto' (cuda when available), 'cpu' or 'cuda'")
    p.add_argument('--log-every', type=int, default=20)
    p.add_argument('--ckpt-every', type=int, default=1000)
    p.add_argument('--resume', action='store_true', help='continue from <out>/checkpoint.pth')
    p.add_argument('--init', default=None, help='start from these model weights (a model_final.pth), fresh schedule')
    return p.parse_args(argv)


def lr_factor(it, warmup, total):
    if it < warmup:
        return 0.001 + (1 - 0.001) * it / warmup
    t = (it - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))


def batches(dataset, batch, seed):
    """Endless stream of index batches: a fresh seeded permutation per epoch."""
    epoch = 0
    while True:
        g = torch.Generator().manual_seed(seed * 1000003 + epoch)
        dataset.epoch_seed = epoch
        order = torch.randperm(len(dataset), generator=g).tolist()
        for i in range(0, len(order) - batch + 1, batch):
            yield order[i:i + batch]
        epoch += 1


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available() else
                          ('cpu' if args.device == 'auto' else args.device))
    os.makedirs(args.out, exist_ok=True)

    model = build_model(args.arch, args.image_size, args.head_channels).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, args.warmup, args.iters))
    start = 0
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location='cpu'))
    ckpt_path = os.path.join(args.out, 'checkpoint.pth')
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location='cpu')
        model.load_state_dict(ck['model'])
        opt.load_state_dict(ck['optimizer'])
        sched.load_state_dict(ck['scheduler'])
        start = ck['iter']
        torch.set_rng_state(ck['rng'])
        print(f'resumed at iteration {start}')

    data = CanvasDataset(args.data, hflip=True)
    config = dict(vars(args), device=str(device), torch=torch.__version__, train_images=len(data),
                  params=sum(p.numel() for p in model.parameters()))
    with open(os.path.join(args.out, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
    print(json.dumps(config))

    stream = batches(data, args.batch, args.seed)
    for _ in range(start):  # replay the sample order so a resumed run sees the same batches
        next(stream)
    log = open(os.path.join(args.out, 'log.jsonl'), 'a')
    model.train()
    t_start = time.time()
    t_window = time.time()
    c_window = time.process_time()
    window = []
    for it in range(start, args.iters):
        idx = next(stream)
        samples = [data[i] for i in idx]
        images = [(img.float() / 255).to(device) for img, _ in samples]
        targets = [{k: v.to(device) for k, v in t.items()} for _, t in samples]
        losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise RuntimeError(f'non-finite loss at iteration {it}: {({k: v.item() for k, v in losses.items()})}')
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        sched.step()
        window.append({k: v.item() for k, v in losses.items()} | {'loss': loss.item()})
        done = it + 1
        if done % args.log_every == 0 or done == args.iters:
            avg = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
            # cpu_s_per_iter (process CPU time) is what an iteration costs on an idle machine with --threads 1;
            # wall-clock s_per_iter also counts waiting for a shared CPU
            rec = dict(iter=done, lr=opt.param_groups[0]['lr'],
                       s_per_iter=(time.time() - t_window) / len(window),
                       cpu_s_per_iter=(time.process_time() - c_window) / len(window),
                       elapsed_s=time.time() - t_start, **avg)
            log.write(json.dumps(rec) + '\n')
            log.flush()
            print(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in rec.items()), flush=True)
            window = []
            t_window = time.time()
            c_window = time.process_time()
        if done % args.ckpt_every == 0 or done == args.iters:
            torch.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                            iter=done, rng=torch.get_rng_state(), arch=args.arch), ckpt_path)
    torch.save(model.state_dict(), os.path.join(args.out, 'model_final.pth'))
    print(f'done: {args.iters - start} iterations in {time.time() - t_start:.0f} s')


if __name__ == '__main__':
    main()
