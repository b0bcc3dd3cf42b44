"""detal: active-learning pre-labeling for object detection.

The pure core (``detal.uncertainty``, ``detal.selection``, ``detal.config``)
imports only numpy and pyyaml. ``ultralytics`` is imported lazily, by the
model adapter ``detal.ultra`` alone.
"""

__version__ = "0.1.0"
