"""Reference networks used across lumos, its tests and workshops. Each is small enough to
train in seconds on a CPU, and its layers have stable names (``features``, ``gap``,
``classifier``) that CAM and layer-wise methods can point at."""
from lumos.models.attention_rnn import AdditiveAttention, AttentionRNN
from lumos.models.eeg import EEGNet
from lumos.models.reference import CNN1d, CNN2d, MLP, RecurrentClassifier
from lumos.models.temporal import (TCN, AllSteps, GRUClassifier, LSTMClassifier, SalientSquares,
                                   TransformerClassifier)

__all__ = ["MLP", "CNN1d", "CNN2d", "RecurrentClassifier", "AttentionRNN", "AdditiveAttention", "EEGNet",
           "GRUClassifier", "LSTMClassifier", "AllSteps", "TCN", "TransformerClassifier", "SalientSquares"]
