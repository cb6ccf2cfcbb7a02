"""LSTM autoencoders on time series."""
