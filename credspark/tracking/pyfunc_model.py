"""MLflow models-from-code entry point of the credspark pyfunc (see :mod:`credspark.tracking.pyfunc`).

MLflow copies this file into the logged model and runs it at load time; the model object it sets is built
from code in the installed credspark package, so no pickled object is stored or loaded.
"""

import mlflow

from credspark.tracking.pyfunc import CredsparkScoringModel

mlflow.models.set_model(CredsparkScoringModel())
