"""TensorFlow numerics: input derivatives of a network (:mod:`.derivatives`), loss formulations
(:mod:`.losses`), the networks (:mod:`.models`), optimizers (:mod:`.optimizers`) and neural tangent
kernel traces (:mod:`.ntk`).  The engine (:mod:`pinnlab.training`) composes them."""
