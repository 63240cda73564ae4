"""Candidate inference paths for the frozen sketch backbone (EfficientNet-Lite0, one 224-px sketch).

Times each path alternately in one process (``--repeat`` rounds, the median per path and its ratio
to TorchScript-frozen float32) and compares its features with eager float32 (cosine). Paths:
eager float32, TorchScript-frozen float32 (geoseek's default), frozen bfloat16, static int8 (FX,
x86 backend, calibrated on real sketches), and ONNX Runtime when importable (``--ort-path DIR``
adds a folder with onnxruntime / onnx to sys.path, so it need not be installed in the project).

To measure as on an AVX2-only CPU::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 GEOSEEK_PRECISION=float32 \\
        python bench/backbone_paths.py --threads 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--ort-path", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from geoseek.runtime.threads import configure_openmp_env

    configure_openmp_env()
    if args.ort_path:
        sys.path.append(args.ort_path)
    import numpy as np
    import torch
    import torch.nn.functional as F

    from geoseek.contention.workloads import _sketch_inks
    from geoseek.encoders import sketch_image as si
    from geoseek.runtime import describe_runtime

    torch.set_num_threads(args.threads)
    inks = torch.from_numpy(_sketch_inks(40, 112))
    imgs = F.interpolate(1 - inks[:, None], size=(224, 224), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    x_all = ((imgs - 0.5) / 0.5).contiguous()
    eager = si.image_backbone()
    paths = {"eager_fp32": lambda x: eager.forward_features(x)}
    frozen = si.frozen_image_backbone("float32")
    paths["torchscript_fp32"] = lambda x: frozen(x.contiguous(memory_format=torch.channels_last))
    if describe_runtime()["native_bf16"]:
        fb = si.frozen_image_backbone("bfloat16")
        paths["torchscript_bf16"] = lambda x: fb(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86"
        import copy

        m = si._Features(copy.deepcopy(eager)).eval()
        prepared = prepare_fx(m, get_default_qconfig_mapping("x86"), example_inputs=(x_all[:1],))
        with torch.no_grad():
            for i in range(0, 32, 8):
                prepared(x_all[i : i + 8])
        q = convert_fx(prepared)
        qs = torch.jit.freeze(torch.jit.trace(q, x_all[:1]).eval())
        paths["int8_static_fx"] = lambda x: qs(x)
    except Exception as exc:  # noqa: BLE001
        print(f"int8: {exc}", file=sys.stderr)
    try:
        import onnxruntime as ort

        path = "/tmp/geoseek_backbone.onnx"
        torch.onnx.export(si._Features(eager).eval(), (x_all[:1],), path, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        paths["onnxruntime_fp32"] = lambda x: torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])
    except Exception as exc:  # noqa: BLE001
        print(f"onnxruntime: {exc}", file=sys.stderr)

    times: dict[str, list[float]] = {k: [] for k in paths}
    cos: dict[str, float] = {}
    with torch.no_grad():
        ref = eager.forward_features(x_all[:8]).flatten(1)
        for k, f in paths.items():
            for i in range(2):
                f(x_all[i : i + 1])
            cos[k] = float(F.cosine_similarity(f(x_all[:8]).float().flatten(1), ref).min())
        for r in range(args.repeat):
            x = x_all[r % len(x_all) : r % len(x_all) + 1]
            for k, f in paths.items():
                t = time.perf_counter()
                f(x)
                times[k].append(time.perf_counter() - t)
    base = statistics.median(times["torchscript_fp32"])
    out = {"runtime": describe_runtime(), "threads": args.threads,
           "paths": {k: {"ms": round(1000 * statistics.median(v), 2),
                         "ratio_to_torchscript_fp32": round(statistics.median(v) / base, 3),
                         "min_cosine_to_eager_fp32": round(cos[k], 4)} for k, v in times.items()}}
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
