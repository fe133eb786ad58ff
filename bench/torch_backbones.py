#!/usr/bin/env python3
"""PyTorch latency of the official FasterNet code (or torchvision ResNet50), for `fasternet bench backbones`.

Set up as the official repo measures CPU latency (README: --fuse_conv_bn --pconv_fw_type slicing,
utils.measure_latency with num_threads): eval mode, BatchNorm fused into the preceding conv, inference mode.
Weights are random (latency does not depend on them). Prints one JSON line per measurement:
  {"arch", "input": [h, w], "threads", "ms_median", "ms_min", "runtime": "torch <version>"}
Usage: bench/torch_backbones.py --fasternet-repo DIR --arch fasternet_s --size 224x224 --threads 1 [--iters 20]
The official models/fasternet.py is loaded from DIR (never committed) with a three-function timm shim.
"""
import argparse, functools, importlib.util, json, os, sys, tempfile, time
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

SHIM = '''
import torch, torch.nn as nn
class DropPath(nn.Module):
    def __init__(self, p=0.): super().__init__(); self.p = p
    def forward(self, x): return x
def to_2tuple(x): return (x, x)
def trunc_normal_(t, std=1.0, **kw):
    with torch.no_grad(): return t.normal_(0, std).clamp_(-2 * std, 2 * std)
'''
VARIANTS = {
    'fasternet_t0': (40, [1, 2, 8, 2], 'GELU'), 'fasternet_t1': (64, [1, 2, 8, 2], 'GELU'),
    'fasternet_t2': (96, [1, 2, 8, 2], 'RELU'), 'fasternet_s': (128, [1, 2, 13, 2], 'RELU'),
    'fasternet_m': (144, [3, 4, 18, 3], 'RELU'), 'fasternet_l': (192, [3, 4, 18, 3], 'RELU'),
}
PAIRS = [('proj', 'norm'), ('reduction', 'norm'), ('conv1', 'bn1'), ('conv2', 'bn2'), ('conv3', 'bn3'), ('0', '1')]


def fuse(module):
    """Folds every BatchNorm that directly follows a conv (named pairs above) into it."""
    for m in list(module.modules()):
        for c, b in PAIRS:
            conv, bn = m._modules.get(c), m._modules.get(b)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                m._modules[c] = fuse_conv_bn_eval(conv, bn)
                m._modules[b] = nn.Identity()
    return module


@functools.lru_cache(maxsize=None)
def load_fasternet(repo):
    shim = tempfile.mkdtemp()
    os.makedirs(os.path.join(shim, 'timm/models'))
    for d in ('timm', 'timm/models'):
        open(os.path.join(shim, d, '__init__.py'), 'w').close()
    open(os.path.join(shim, 'timm/models/layers.py'), 'w').write(SHIM)
    sys.path.insert(0, shim)
    spec = importlib.util.spec_from_file_location('fasternet_official', os.path.join(repo, 'models/fasternet.py'))
    mod = importlib.util.module_from_spec(spec)
    stdout = sys.stdout
    sys.stdout = sys.stderr  # the module prints an mmdet notice on import
    spec.loader.exec_module(mod)
    sys.stdout = stdout
    return mod.FasterNet


def build(arch, features, repo):
    if arch == 'resnet50':
        import torchvision
        model = torchvision.models.resnet50()
        if features:
            model.fc = nn.Identity()
            model.avgpool = nn.Identity()
    else:
        e, depths, act = VARIANTS[arch]
        model = load_fasternet(repo)(embed_dim=e, depths=depths, act_layer=act, mlp_ratio=2., n_div=4,
                                     feature_dim=1280, drop_path_rate=0., fork_feat=features,
                                     pconv_fw_type='slicing')
    return fuse(model.eval())


def serve(repo):
    """One request per stdin line, {"arch", "input": [h, w], "threads", "features"}: runs the model once and
    answers {"ms"}. Lets the caller interleave PyTorch and ONNX Runtime runs in time (fair on a shared machine)."""
    models, inputs, fasternet = {}, {}, [None]
    for line in sys.stdin:
        r = json.loads(line)
        key = (r['arch'], bool(r['features']))
        if key not in models:
            models[key] = build(r['arch'], r['features'], repo)
        h, w = r['input']
        if (h, w) not in inputs:
            inputs[(h, w)] = torch.randn(1, 3, h, w)
        torch.set_num_threads(int(r['threads']))
        with torch.inference_mode():
            t = time.perf_counter()
            models[key](inputs[(h, w)])
            ms = (time.perf_counter() - t) * 1000
        print(json.dumps(dict(ms=ms, runtime=f'torch {torch.__version__}')), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--fasternet-repo')
    ap.add_argument('--serve', action='store_true', help='answer run requests from stdin (see serve())')
    ap.add_argument('--arch')
    ap.add_argument('--size', default='224x224')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--iters', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--features', action='store_true', help='detection backbone (fork_feat) instead of classifier')
    a = ap.parse_args()
    if a.serve:
        return serve(a.fasternet_repo)
    torch.set_num_threads(a.threads)
    h, w = (int(v) for v in a.size.split('x'))
    model = build(a.arch, a.features, a.fasternet_repo)
    x = torch.randn(1, 3, h, w)
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.iters):
            t = time.perf_counter()
            model(x)
            if i >= a.warmup:
                times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(json.dumps(dict(arch=a.arch, input=[h, w], threads=a.threads, ms_median=times[len(times) // 2], ms_min=times[0],
                          runtime=f'torch {torch.__version__}')))


if __name__ == '__main__':
    main()
