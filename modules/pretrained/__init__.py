"""Pretrained encoders rebuilt in tf_keras from their published weights, read
without torch or transformers: BERT-family text encoders (bert.py) and
EfficientNet-Lite0 (efficientnet_lite.py). modules/encoders.py names them."""
