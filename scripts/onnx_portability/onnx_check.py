#!/usr/bin/env python3
"""Validates ONNX files with the reference `onnx` package (Debian python3-onnx): checker with full_check and
strict shape inference; prints opset, inferred output shapes and metadata keys.
Usage: /usr/bin/python3 scripts/onnx_portability/onnx_check.py /tmp/onnxcheck/*.onnx"""
import sys
import onnx

for f in sys.argv[1:]:
    m = onnx.load(f)
    onnx.checker.check_model(m, full_check=True)
    inf = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    outs = [(o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]) for o in inf.graph.output]
    print(f'{f}: ok (onnx {onnx.__version__}), ir {m.ir_version}, opset {m.opset_import[0].version}, outputs {outs}, '
          f'metadata {[p.key for p in m.metadata_props]}')
