"""Bridges to other neuro-physiology libraries, imported on demand (each needs its extra):

- :mod:`lumos.integrations.mne`: relevance as an ``mne.EvokedArray`` (montage from the
  channel names), topomaps over time and ``plot_joint`` (``pip install lumos-xai[eeg]``).
- :mod:`lumos.integrations.braindecode`: explaining braindecode models (EEGNet,
  ShallowFBCSPNet...) directly: the temporal convolution for Grad-CAM, channel names and
  sampling rate from the model (``pip install lumos-xai[braindecode]``, see its docstring).
"""
