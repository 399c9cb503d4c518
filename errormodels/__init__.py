"""errormodels: operand statistics, predicted layer error per multiplier, sigma -> multiplier matching."""
