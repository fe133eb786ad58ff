"""Mask R-CNN models trained by this recipe, built from torchvision 0.14 parts so state-dict keys are
torchvision's: backbone.body.*, backbone.fpn.*, rpn.*, roi_heads.box_head/box_predictor/mask_head/mask_predictor.*
"""
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from fasternet import FasterNetFeatures

NUM_CLASSES = 11  # background + 10 Fashion-MNIST classes (COCO category ids 1..10)
FPN_CHANNELS = 256


class FasterNetFPN(nn.Module):
    """FasterNet trunk + torchvision FPN, laid out like torchvision's BackboneWithFPN (body / fpn)."""

    def __init__(self, variant, channels=FPN_CHANNELS):
        super().__init__()
        self.body = FasterNetFeatures(variant)
        self.fpn = FeaturePyramidNetwork(self.body.out_channels, channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = channels

    def forward(self, x):
        return self.fpn(self.body(x))


def head_kwargs(image_size):
    """Settings shared by both models. Canvases are square, so min_size = max_size = image_size means the
    transform never resizes them; mean/std are torchvision's ImageNet defaults (pixels scaled to 0..1)."""
    return dict(
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        # training only: fewer proposals and sampled RoIs than COCO's defaults (a canvas holds at most 6
        # objects; it is CPU time). Test-time settings stay torchvision's, so inference needs no extra config.
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        box_batch_size_per_image=64,
        box_detections_per_img=100,
    )


def narrow_heads(channels):
    """Mask head and predictor as torchvision's (4 convs + deconv), `channels` wide instead of 256."""
    # torchvision wants num_classes=None once a predictor is given, and then both predictors
    return dict(num_classes=None, box_predictor=FastRCNNPredictor(1024, NUM_CLASSES),
                mask_head=MaskRCNNHeads(channels, (channels,) * 4, 1),
                mask_predictor=MaskRCNNPredictor(channels, channels, NUM_CLASSES))


def build_model(arch, image_size=256, head_channels=FPN_CHANNELS):
    """arch: 'fasternet_t0' | 'fasternet_t1' | ... | 'resnet50'. All trained from scratch with BatchNorm in
    train mode (FrozenBatchNorm with identity statistics would leave a from-scratch net unnormalised).
    head_channels: FPN / RPN / mask-head width; 256 is torchvision's, fewer makes CPU training cheaper and
    keeps every key name (only shapes change)."""
    kw = dict(head_kwargs(image_size), num_classes=NUM_CLASSES)
    if head_channels != FPN_CHANNELS:
        kw.update(narrow_heads(head_channels))
    if arch == 'resnet50':
        if head_channels == FPN_CHANNELS:
            # weights=None, weights_backbone=None: torchvision uses nn.BatchNorm2d and trains all 5 stages
            return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kw)
        # the same network as maskrcnn_resnet50_fpn builds without weights, only the FPN width differs
        body = resnet50(weights=None, norm_layer=nn.BatchNorm2d)
        backbone = BackboneWithFPN(body, {'layer1': '0', 'layer2': '1', 'layer3': '2', 'layer4': '3'},
                                   [256, 512, 1024, 2048], head_channels, extra_blocks=LastLevelMaxPool())
        return MaskRCNN(backbone, **kw)
    if arch.startswith('fasternet_'):
        return MaskRCNN(FasterNetFPN(arch[len('fasternet_'):], head_channels), **kw)
    raise ValueError(f'unknown arch {arch!r}')
