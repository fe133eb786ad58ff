"""pycocotools timings (CPU time, best of 5) for the RLEs written by bench/mask.ts; also checks its iou is identical.
Usage: PYTHONPATH=<pycocotools dir> python3 bench/mask_pycocotools.py OUT.json"""
import json
import os
import sys
import time
import timeit

import numpy as np
import pycocotools.mask as mask_utils

d = json.load(open(sys.argv[1]))
dt, gt, crowd = d['dt'], d['gt'], d['iscrowd']
o = mask_utils.iou(dt, gt, crowd)
assert np.array_equal(np.asarray(o).ravel(), np.asarray(d['iou'])), 'iou differs from mask.ts'
print('iou identical to mask.ts: yes')
for label, f, n in (
    ('iou 100 dt x 20 gt (pycocotools, parses strings each call)', lambda: mask_utils.iou(dt, gt, crowd), 20),
    ('decode 640x480', lambda: mask_utils.decode(dt[0]), 50),
    ('encode 640x480 (Fortran-order input)', (lambda m: lambda: mask_utils.encode(m))(np.asfortranarray(mask_utils.decode(dt[0]))), 50),
    ('frPyObjects 60-vertex polygon', lambda: mask_utils.frPyObjects([d['poly']], 480, 640), 200),
):
    t = min(timeit.Timer(f, timer=time.process_time).repeat(number=n, repeat=5)) / n * 1000
    print(f'{label}: {t:.3f} ms')

coco_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'fixtures', 'coco', 'instances_val2014_100.json')
if os.path.exists(coco_path):
    g = json.load(open(coco_path))
    size = {im['id']: im for im in g['images']}
    polys = [a for a in g['annotations'] if isinstance(a['segmentation'], list)]

    def ann_to_rle():
        for a in polys:
            im = size[a['image_id']]
            mask_utils.merge(mask_utils.frPyObjects(a['segmentation'], im['height'], im['width']))

    t = min(timeit.Timer(ann_to_rle, timer=time.process_time).repeat(number=5, repeat=5)) / 5 * 1000
    print(f'annToRle (frPyObjects + merge) of {len(polys)} COCO val2014 polygon annotations: {t:.3f} ms')
