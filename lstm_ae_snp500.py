"""Assignment 3.3: LSTM autoencoders on S&P 500 prices. Not yet implemented (issue #4)."""
import sys

if __name__ == "__main__":
    sys.exit("lstm_ae_snp500.py: not yet implemented (see issue #4)")
