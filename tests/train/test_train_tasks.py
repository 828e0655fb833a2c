"""A built-in task, by name or object, must be the one the model was created for (``model.task_name``); the
model's own task, tasks of the user's and models that declare none are accepted."""
import pytest

from graphfuse.models import create_model
from graphfuse.testing import UserModel
from graphfuse.train import TASKS, ClassificationTask, RegressionTask, RetrievalTask, Task, Trainer, register_task

FAST = dict(epochs=1, batch_size=8, lr=1e-2, progress=False)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def retrieval_model(colour_builder):
    return create_model("graph-gcn", builder=colour_builder, task="retrieval", query=["text"], gallery=["image"],
                        hidden_channels=8, num_layers=1, rerank=False)


def test_a_built_in_task_the_model_was_not_created_for_is_refused(make_model, colour_builder, retrieval_model):
    classifier = make_model()
    with pytest.raises(ValueError, match=r"Trainer got task='retrieval', but GraphFusionModel was created for "
                                         r"'classification' \(its model.task_name\): leave task= out to use "
                                         r"'classification', or create the model for 'retrieval' "
                                         r"\(graphfuse.models.create_model\(..., task='retrieval'\)\)"):
        Trainer(classifier, colour_builder, task="retrieval")
    with pytest.raises(ValueError, match=r"task=RetrievalTask\(monitor='rsum'\), but GraphFusionModel was created "
                                         r"for 'classification'.*create the model for 'retrieval'"):
        Trainer(classifier, colour_builder, task=RetrievalTask())
    with pytest.raises(ValueError, match=r"task=RegressionTask\(monitor='mse'\), but GraphFusionModel was created "
                                         r"for 'classification'"):
        Trainer(classifier, colour_builder, task=RegressionTask(classifier.head))
    with pytest.raises(ValueError, match="task='multilabel', but GraphFusionModel was created for 'classification'"):
        Trainer(classifier, colour_builder, task="multilabel")
    with pytest.raises(ValueError, match="task='classification', but GraphRetrievalModel was created for "
                                         "'retrieval'.*leave task= out to use 'retrieval'"):
        Trainer(retrieval_model, colour_builder, task="classification")


def test_the_models_own_task_trains(make_model, colour_builder, retrieval_model, small):
    train, val = small
    classifier = make_model()
    trainer = Trainer(classifier, colour_builder, task="classification", **FAST)
    assert isinstance(trainer.task, ClassificationTask) and trainer.task.head is classifier.head
    assert "val_accuracy" in trainer.fit(train, val)[0]
    trainer = Trainer(retrieval_model, colour_builder, task="retrieval", **FAST)
    assert isinstance(trainer.task, RetrievalTask)
    assert "val_rsum" in trainer.fit(train, val)[0]


class Ordered(ClassificationTask):
    """A built-in task of the user's, refined: still classification."""


class Constant(Task):
    """A task of the user's own, whose fit to a model is unknown."""

    def loss(self, output, batch):
        return output.sum() * 0.0


def test_tasks_and_models_of_unknown_fit_are_accepted(make_model, colour_builder, small):
    classifier = make_model()
    assert isinstance(Trainer(classifier, colour_builder, task=Ordered(classifier.head)).task, Ordered)
    assert isinstance(Trainer(classifier, colour_builder, task=Constant()).task, Constant)
    register_task("tests.ordered", lambda model: Ordered(model.head))
    try:
        assert isinstance(Trainer(classifier, colour_builder, task="tests.ordered").task, Ordered)
    finally:
        TASKS.unregister("tests.ordered")
    user_model = UserModel(make_model())
    assert not hasattr(user_model, "task_name")
    trainer = Trainer(user_model, colour_builder, task="classification", **FAST)
    assert len(trainer.fit(*small)) == 1
    assert isinstance(Trainer(user_model, colour_builder, task="retrieval").task, RetrievalTask)
    # Its head still has to fit a head task.
    with pytest.raises(ValueError, match="UserModel's head is multi-class; build the model with the task it is "
                                         "trained for"):
        Trainer(user_model, colour_builder, task="multilabel")
