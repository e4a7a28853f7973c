"""credspark: credit-default scoring on Spark with ACTGAN oversampling, ResNet-LSTM and focal-loss XGBoost."""

__version__ = "0.1.0"
