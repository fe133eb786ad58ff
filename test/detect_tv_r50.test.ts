/**
 * torchvision-flavor Mask R-CNN (r50) against torchvision 0.14's own MaskRCNN, stage by stage
 * (fixtures: scripts/fixtures/make_detect_tv_fixtures.py; checks: test/helpers/detect_tv_parity.ts).
 */
import { parityTests } from './helpers/detect_tv_parity.ts';

parityTests('r50');
