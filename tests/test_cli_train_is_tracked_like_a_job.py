"""`wan-nb train` builds the callback set of the training job notebook through `wan_nb.tracking.training_callbacks`,
so a run started from the command line is tracked in MLflow like a papermill job (`--no-track` leaves MLflow out)."""
import wan_nb.tracking
import wan_nb.train
from wan_nb.cli import main


def test_train_builds_its_callbacks_with_training_callbacks(monkeypatch):
    calls = []

    class Recorder:
        def __init__(self, cfg, callbacks, progress=True): calls.append(('trainer', callbacks))
        def train(self, resume=None): return 'final'
    monkeypatch.setattr(wan_nb.train, 'Trainer', Recorder)
    monkeypatch.setattr(wan_nb.tracking, 'training_callbacks',
                        lambda cfg, tracking=True, **kw: calls.append(('callbacks', cfg.max_train_steps, tracking)) or ['cb'])
    assert main(['train', '--set', 'max_train_steps=4']) == 0
    assert main(['train', '--set', 'max_train_steps=5', '--no-track']) == 0
    assert calls == [('callbacks', 4, True), ('trainer', ['cb']), ('callbacks', 5, False), ('trainer', ['cb'])]
