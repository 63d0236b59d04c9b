"""Compression of trained Graphix models: similarity-based layer drop and attention sharing.

- :mod:`~graphix.compression.similarity`: how much each sublayer changes its input, and how
  alike the attention maps of the layers of a stack are, on calibration examples.
- :mod:`~graphix.compression.layer_drop`: remove the sublayers that change their input least.
- :mod:`~graphix.compression.attention_sharing`: let groups of similar attention layers reuse
  their first layer's attention probabilities.
- :mod:`~graphix.compression.distillation`: train a compressed student from the original
  teacher.
- :mod:`~graphix.compression.structure`: sublayer names and the rebuild of a compressed
  checkpoint from its config.

A compressed model saves with ``save_pretrained`` and loads with
``GraphixT5ForConditionalGeneration.from_pretrained`` like any other.
"""
