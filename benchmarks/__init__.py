"""Speed benchmarks of Autoencoder Explorer.

`python -m benchmarks` runs every section and writes docs/performance.md (`--quick`: under two minutes on two
cores; `--only training,cpu`: some sections; `--wait-quiet 600`: wait for other work on the machine to stop
before each round; `--check`: fail when aecore.fit loses its lead over the reference loops by a wide margin).
`python -m benchmarks.gpu` measures the GPU path on a CUDA machine into benchmarks/results/gpu.json, which the
report includes.

Sections: training (aecore.fit against a tutorial loop and a plain loop; each speed technique alone; precision
and memory format by model; the conv preset's size), cpu (fraction of the matmul rate), startup, projection,
umap (first call against warm), concurrency (training jobs at once).
"""
