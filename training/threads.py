"""Caps BLAS/OpenMP threads to the script's --threads before torch is imported.

Debian's torch links OpenBLAS, whose own thread pool ignores torch.set_num_threads: without this cap,
"--threads 1" still keeps a second core busy. Import this module before torch.
"""
import os
import sys


def _threads_arg(argv, default='1'):
    for i, a in enumerate(argv):
        if a == '--threads' and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith('--threads='):
            return a.split('=', 1)[1]
    return default


for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ.setdefault(_var, _threads_arg(sys.argv[1:]))
