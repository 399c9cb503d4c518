"""agn: the torch side of the toolkit: quantization, noisy and approximate layers, the bit-exact
simulation engine, models, data, Lightning training, NSGA-II search, export and the pipeline.

Submodules are imported on use so that ``agn multipliers`` never pays for torch.
"""
