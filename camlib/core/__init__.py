"""The core: class activation maps, saliency, boxes, feature extraction, distributed helpers, figures."""
