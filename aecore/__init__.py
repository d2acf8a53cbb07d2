"""aecore: the autoencoder engine behind Autoencoder Explorer — data, models, training, latent tools, figures."""
__version__ = "0.1.0"

import gc

# Importing torch makes about a million objects, and the cyclic collector's passes over them took a fifth of the
# import's time (perf, on two Xeon cores): `import aecore` 2.9 s instead of 3.3 s (medians of 6 fresh interpreters).
_collecting = gc.isenabled()
gc.disable()
try:
    from .checkpoint import CheckpointError, load, read_card, save, to_bytes
    from .data import DOWNLOADABLE, EMBEDDED, ImageDataset, data_dir, dataset_names, load_dataset
    from .latent import (active_units, encode_dataset, interpolate, kl_per_dimension, neighbours, sample, slerp,
                         traverse)
    from .metrics import evaluate, image_metrics, mse, pca_mse, psnr, reconstruct, ssim
    from .models import (PRESET_DESCRIPTIONS, PRESETS, Autoencoder, ModelSpec, TrainSpec, build_model, images_of,
                         preset)
    from .noise import add_noise
    from .projection import METHODS, aligned_frame, knn_accuracy, project, projector, trustworthiness
    from .train import TrainingDiverged, best_epoch, check_fit, evaluate_loss, fit, pick_device
    from . import cli, jobs  # viz (Plotly) is imported by the pages that draw: `from aecore import viz`
finally:
    if _collecting:
        gc.enable()
