"""Dataset loaders returning arrays in lumos's layouts: tables (N, d), time series
(N, C, T), images (N, C, H, W), with class, feature/channel names and sampling rate."""
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

__all__ = ["Dataset", "find_data_dir", "load_breast_cancer", "load_digits", "load_ecg200", "load_mnist",
           "load_npz_dataset", "load_p300"]
