"""A small GPU computation for inside an env run with ``--gpu`` (standard library only: it runs on the env's Python).

Through ctypes on the CUDA driver API (``libcuda.so.1``, the host driver's, bound in by ``--gpu``): JIT-compile
a PTX vector add, add two vectors of N floats on the device, copy back, check every element, and time the
copies and the kernel.  Also reports the env's own CUDA runtime (libcudart of nvidia-cuda-runtime-cu12)
version when the env has it.  Prints one JSON document; exit status 0 only if every element is right.

    envgen run SPEC --variant cuda12 --gpu --bind bench:/bench:ro -- python3 /bench/gpu_compute.py [N]
"""

from __future__ import annotations

import array
import ctypes
import glob
import json
import sys
import time

PTX = rb"""
.version 7.0
.target sm_52
.address_size 64
.visible .entry vadd(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u32 pn)
{
  .reg .pred p;
  .reg .b32 r<6>;
  .reg .f32 f<4>;
  .reg .b64 rd<11>;
  ld.param.u64 rd1, [pa];
  ld.param.u64 rd2, [pb];
  ld.param.u64 rd3, [pc];
  ld.param.u32 r1, [pn];
  mov.u32 r2, %ctaid.x;
  mov.u32 r3, %ntid.x;
  mov.u32 r4, %tid.x;
  mad.lo.s32 r5, r2, r3, r4;
  setp.ge.u32 p, r5, r1;
  @p bra DONE;
  cvta.to.global.u64 rd4, rd1;
  cvta.to.global.u64 rd5, rd2;
  cvta.to.global.u64 rd6, rd3;
  mul.wide.u32 rd7, r5, 4;
  add.s64 rd8, rd4, rd7;
  add.s64 rd9, rd5, rd7;
  add.s64 rd10, rd6, rd7;
  ld.global.f32 f1, [rd8];
  ld.global.f32 f2, [rd9];
  add.f32 f3, f1, f2;
  st.global.f32 [rd10], f3;
DONE:
  ret;
}
"""


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 24
    out: dict = {"n": n}
    cudart = sorted(glob.glob(sys.prefix + "/lib/python3*/site-packages/nvidia/cuda_runtime/lib/libcudart.so*"))
    if cudart:
        v = ctypes.c_int()
        ctypes.CDLL(cudart[0]).cudaRuntimeGetVersion(ctypes.byref(v))
        out["env_cudart"] = f"{v.value // 1000}.{(v.value % 1000) // 10}"
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        print(json.dumps({**out, "error": f"libcuda.so.1: {exc}"}, sort_keys=True))
        return 1

    def call(name: str, *args) -> None:
        rc = getattr(cu, name)(*args)
        if rc != 0:
            msg = ctypes.c_char_p()
            cu.cuGetErrorString(rc, ctypes.byref(msg))
            print(json.dumps({**out, "error": f"{name}: {msg.value.decode() if msg.value else rc}"}, sort_keys=True))
            raise SystemExit(1)

    call("cuInit", 0)
    dev, ctx, mod, fn = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    call("cuDeviceGet", ctypes.byref(dev), 0)
    name = ctypes.create_string_buffer(256)
    call("cuDeviceGetName", name, 256, dev)
    drv = ctypes.c_int()
    call("cuDriverGetVersion", ctypes.byref(drv))
    out.update(device=name.value.decode(), driver_cuda=f"{drv.value // 1000}.{(drv.value % 1000) // 10}")
    call("cuCtxCreate_v2", ctypes.byref(ctx), 0, dev)
    t0 = time.perf_counter()
    call("cuModuleLoadData", ctypes.byref(mod), ctypes.c_char_p(PTX + b"\0"))
    out["ptx_jit_s"] = round(time.perf_counter() - t0, 4)
    call("cuModuleGetFunction", ctypes.byref(fn), mod, b"vadd")
    a = array.array("f", (float(i % 1000) for i in range(n)))
    b = array.array("f", (float((i * 7) % 1000) / 4 for i in range(n)))
    c = array.array("f", bytes(4 * n))
    size = 4 * n
    da, db, dc = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
    for d in (da, db, dc):
        call("cuMemAlloc_v2", ctypes.byref(d), ctypes.c_size_t(size))
    ptr = lambda arr: ctypes.c_void_p(arr.buffer_info()[0])  # noqa: E731
    t0 = time.perf_counter()
    call("cuMemcpyHtoD_v2", da, ptr(a), ctypes.c_size_t(size))
    call("cuMemcpyHtoD_v2", db, ptr(b), ctypes.c_size_t(size))
    out["h2d_GBps"] = round(2 * size / (time.perf_counter() - t0) / 1e9, 2)
    nn = ctypes.c_uint32(n)
    params = (ctypes.c_void_p * 4)(*[ctypes.cast(ctypes.byref(x), ctypes.c_void_p) for x in (da, db, dc, nn)])
    block = 256
    grid = (n + block - 1) // block
    call("cuCtxSynchronize")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        call("cuLaunchKernel", fn, grid, 1, 1, block, 1, 1, 0, None, params, None)
        call("cuCtxSynchronize")
        times.append(time.perf_counter() - t0)
    out["kernel_s_min"] = round(min(times), 6)
    out["kernel_GBps"] = round(3 * size / min(times) / 1e9, 1)
    t0 = time.perf_counter()
    call("cuMemcpyDtoH_v2", ptr(c), dc, ctypes.c_size_t(size))
    out["d2h_GBps"] = round(size / (time.perf_counter() - t0) / 1e9, 2)
    bad = sum(1 for i in range(n) if c[i] != a[i] + b[i])
    out["wrong_elements"] = bad
    for d in (da, db, dc):
        cu.cuMemFree_v2(d)
    cu.cuCtxDestroy_v2(ctx)
    print(json.dumps(out, sort_keys=True))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
