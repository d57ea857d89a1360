"""MLflow models-from-code entry: the pyfunc a registry consumer loads.

MLflow copies this file into the logged model and runs it at load time; it is never imported by
seqflow itself. Predictions go through ``seqmodels.kinds.load_predictor`` (shipped with the model as code), using
the ``model_dir`` artifact: state_dict + config + vocabulary + label map, nothing pickled.
"""

import mlflow
from mlflow.models import set_model


class SeqflowModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame)`` -> DataFrame; the columns depend on the task kind (see the README)."""

    def load_context(self, context):
        from seqmodels.kinds import load_predictor

        self.predictor = load_predictor(context.artifacts["model_dir"], device="auto")

    def predict(self, context, model_input, params=None):
        import pandas as pd

        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if params:  # inference parameters the kind's signature declares (MLflow drops undeclared ones)
            return self.predictor.predict_frame(model_input, **params)
        return self.predictor.predict_frame(model_input)


set_model(SeqflowModel())
