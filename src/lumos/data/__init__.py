"""Dataset loaders returning arrays in lumos's layouts: tables (N, d), time series
(N, C, T), images (N, C, H, W), with class, feature/channel names and sampling rate.

Real archives (MNIST, UCR/UEA, EEG epochs, CSV tables) and scikit-learn's bundled sets
(digits, breast cancer: the embedded default), plus synthetic sets with a known ground
truth (``mask_train`` / ``mask_test``).
"""
from lumos.data.eeg import from_mne, load_epochs_npz
from lumos.data.loaders import (
    Dataset,
    find_data_dir,
    load_breast_cancer,
    load_digits,
    load_ecg200,
    load_mnist,
    load_npz_dataset,
    load_p300,
)
from lumos.data.synthetic import add_watermark, make_bump_series, make_clever_hans_images, make_erp
from lumos.data.tabular import from_dataframe, load_csv
from lumos.data.ucr import load_ucr, read_arff, read_series, read_ts, read_ucr_tsv

__all__ = ["Dataset", "find_data_dir", "load_breast_cancer", "load_digits", "load_ecg200", "load_mnist",
           "load_npz_dataset", "load_p300", "load_ucr", "read_series", "read_ucr_tsv", "read_ts", "read_arff",
           "load_epochs_npz", "from_mne", "load_csv", "from_dataframe", "make_bump_series",
           "make_clever_hans_images", "add_watermark", "make_erp"]
