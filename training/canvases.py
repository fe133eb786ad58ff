"""Reads a Fashion-MNIST canvases split (images/*.png + COCO annotations.json with compressed RLE masks)."""
import json
import os

import numpy as np
import torch
from torchvision.io import read_image


def rle_counts_from_string(s):
    """COCO's compressed RLE string -> run lengths (inverse of maskApi.c rleToString)."""
    counts = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(segmentation):
    """{'size': [h, w], 'counts': str} -> uint8 array (h, w). Runs are column-major, starting with zeros."""
    h, w = segmentation['size']
    counts = rle_counts_from_string(segmentation['counts'])
    flat = np.zeros(h * w, dtype=np.uint8)
    pos = 0
    for i, n in enumerate(counts):
        if i % 2:
            flat[pos:pos + n] = 1
        pos += n
    if pos != h * w:
        raise ValueError(f'RLE covers {pos} pixels, mask has {h * w}')
    return flat.reshape(w, h).T


class CanvasDataset(torch.utils.data.Dataset):
    """Items are (uint8 image tensor 3xHxW, target dict in torchvision detection format)."""

    def __init__(self, root, hflip=False):
        with open(os.path.join(root, 'annotations.json')) as f:
            coco = json.load(f)
        self.root = root
        self.images = coco['images']
        self.by_image = {im['id']: [] for im in self.images}
        for a in coco['annotations']:
            self.by_image[a['image_id']].append(a)
        self.hflip = hflip
        self.epoch_seed = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        info = self.images[idx]
        img = read_image(os.path.join(self.root, 'images', info['file_name']))
        anns = self.by_image[info['id']]
        masks = np.stack([decode_rle(a['segmentation']) for a in anns]) if anns else np.zeros((0, info['height'], info['width']), np.uint8)
        boxes = [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]] for a in anns]
        target = {
            'boxes': torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            'labels': torch.tensor([a['category_id'] for a in anns], dtype=torch.int64),
            'masks': torch.from_numpy(masks),
            'image_id': torch.tensor(info['id']),
        }
        # deterministic flip decision per (epoch, image) so runs repeat exactly
        if self.hflip and (hash((self.epoch_seed, idx)) & 1):
            img = img.flip(-1)
            w = img.shape[-1]
            target['masks'] = target['masks'].flip(-1)
            b = target['boxes'].clone()
            target['boxes'][:, 0] = w - b[:, 2]
            target['boxes'][:, 2] = w - b[:, 0]
        return img, target
