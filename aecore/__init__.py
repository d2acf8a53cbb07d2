"""aecore: the autoencoder engine behind Autoencoder Explorer — data, models, training, latent tools, figures."""
__version__ = "0.1.0"

from .checkpoint import CheckpointError, load, read_card, save, to_bytes
from .data import DOWNLOADABLE, EMBEDDED, ImageDataset, data_dir, dataset_names, load_dataset
from .latent import active_units, encode_dataset, interpolate, kl_per_dimension, neighbours, sample, slerp, traverse
from .metrics import evaluate, image_metrics, mse, pca_mse, psnr, reconstruct, ssim
from .models import (PRESET_DESCRIPTIONS, PRESETS, Autoencoder, ModelSpec, TrainSpec, build_model, images_of,
                     preset)
from .noise import add_noise
from .projection import METHODS, aligned_frame, knn_accuracy, project, projector, trustworthiness
from .train import TrainingDiverged, best_epoch, check_fit, evaluate_loss, fit, pick_device
from . import cli, jobs  # viz (Plotly) is imported by the pages that draw: `from aecore import viz`
