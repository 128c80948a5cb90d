"""Training on several devices or machines with ``tf.distribute``: STRATEGY=default|mirrored|multiworker.

``multiworker`` reads the cluster from ``TF_CONFIG``; only the chief worker writes
the model, its JSON and the logs. See the scaling guide in the docs.
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

import tensorflow as tf

from shoplens import ShoplensError, config

STRATEGIES = ("default", "mirrored", "multiworker")
# adapt_fit_to_strategy reaches into private parts of Keras's fit, as they are in this release series.
ADAPTED_FOR_KERAS = "3.15"


class Distribution:
    """The ``tf.distribute`` strategy of STRATEGY, and this process's place in it.

    Parameters
    ----------
    name : {"default", "mirrored", "multiworker"}
        One process; all local GPUs (or the CPU); or the workers listed in ``TF_CONFIG``.

    Attributes
    ----------
    strategy : tf.distribute.Strategy
    workers : int
        Processes training together.
    chief : bool
        Whether this process writes the model, its JSON and the logs.
    task : str
        This process in ``TF_CONFIG``, e.g. ``worker 1``.
    """

    def __init__(self, name=config.STRATEGY):
        if name not in STRATEGIES:
            raise ShoplensError(f"unknown STRATEGY '{name}' (choose from {', '.join(STRATEGIES)})")
        self.workers, self.chief, self.task = 1, True, "worker 0"
        if name == "default":
            self.strategy = tf.distribute.get_strategy()
        elif name == "mirrored":
            self.strategy = tf.distribute.MirroredStrategy()
        else:
            cluster, task_type, index = read_tf_config()
            self.workers = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
            # TensorFlow's rule: the "chief" task if the cluster has one, else worker 0.
            self.chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
            self.task = f"{task_type} {index}"
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()

    def scratch_dir(self, models_dir, name):
        """Where a worker other than the chief writes: a fixed folder, so a restarted worker finds its backup."""
        if self.chief:
            return None
        project = hashlib.sha1(str(Path(models_dir).resolve()).encode()).hexdigest()[:8]
        return Path(tempfile.gettempdir()) / f"shoplens-{name}-{project}-{self.task.replace(' ', '')}"


def adapt_fit_to_strategy(model, dataset, distribution):
    """Mend two gaps of Keras 3 ``fit`` under a ``tf.distribute`` strategy, for a compiled ``model``.

    Keras builds the loss and metrics from a first batch averaged over the replicas,
    which fails for string and uint8 inputs: build them from the batch shapes instead.
    Across workers it averages each step's scalar logs along an axis they lack: give
    them one. (The logs of an epoch, which the callbacks read, come from the metrics
    summed over all workers either way.)
    """
    check_keras_version()
    with distribution.strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if distribution.workers > 1:
        for name in ("train_step", "test_step"):
            step = getattr(model, name)
            setattr(model, name, lambda data, step=step: tf.nest.map_structure(lambda v: tf.reshape(v, [1]),
                                                                                  step(data)))


def check_keras_version(version=None):
    """Refuse a Keras other than the one :func:`adapt_fit_to_strategy` was written for."""
    import keras

    version = version or keras.__version__
    if not version.startswith(ADAPTED_FOR_KERAS + "."):
        raise ShoplensError(f"STRATEGY=mirrored|multiworker mends private parts of Keras {ADAPTED_FOR_KERAS}.x, and "
                            f"Keras {version} is installed; install the pinned requirements (make) or check "
                            "adapt_fit_to_strategy against this Keras and update ADAPTED_FOR_KERAS")


def read_tf_config():
    """The cluster, task type and task index of ``TF_CONFIG``, checked so that a mistake is one clear line."""
    example = ("""e.g. TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": """
               """{"type": "worker", "index": 0}}' on host1 and index 1 on host2""")
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        raise ShoplensError(f"STRATEGY=multiworker needs TF_CONFIG to list the workers, {example}")
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ShoplensError(f"TF_CONFIG is not valid JSON ({err}); {example}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ShoplensError(f"TF_CONFIG needs a \"cluster\" and a \"task\" object; {example}")
    for job in ("chief", "worker"):
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ShoplensError(f"TF_CONFIG: cluster \"{job}\" must be a list of \"host:port\" addresses; {example}")
    if not cluster.get("worker") and not cluster.get("chief"):
        raise ShoplensError(f"TF_CONFIG: the cluster lists no \"worker\"; {example}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in ("chief", "worker") or task_type not in cluster:
        raise ShoplensError(f"TF_CONFIG: task type '{task_type}' is not a job of the cluster "
                            f"({', '.join(sorted(cluster))}); {example}")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ShoplensError(f"TF_CONFIG: task index {index!r} is not one of the {len(cluster[task_type])} "
                            f"'{task_type}' addresses (0 to {len(cluster[task_type]) - 1})")
    return cluster, task_type, index
