"""Registries for encoders, fusions and heads.

A component is a Keras layer class decorated with ``register_encoder``,
``register_fusion`` or ``register_head``. The decorator publishes it under a
short name (used by :func:`keras_mm.build_model`) and registers it as
Keras-serializable, so a saved model reloads with ``safe_mode=True``.

The constructor signature is the schema: ``build_model`` checks user kwargs
against it and reports unknown or missing arguments by name.

Example:
    >>> @keras_mm.register_fusion("my_sum")
    ... class SumFusion(keras_mm.fusions.Fusion):  # sum of equal-sized vectors; a missing one adds zeros
    ...     def compute_output_dim(self, input_dims):
    ...         return next(iter(input_dims.values()))
    ...     def call(self, features, presence=None):
    ...         features = self.masked_features(features, presence)
    ...         return {"fused": sum(features[k] for k in sorted(features))}
    >>> "my_sum" in keras_mm.list_fusions()
    True
    >>> SumFusion()({"audio": np.ones((2, 3)), "image": np.ones((2, 3))})["fused"].numpy()[0]
    array([2., 2., 2.], dtype=float32)
"""

import difflib
import inspect

import keras

PACKAGE = "keras_mm"


class Registry:
    """A name -> class table for one kind of component.

    Args:
        kind: the component kind, used in error messages (e.g. "encoder").

    Example:
        >>> from keras_mm.registry import Registry
        >>> class Dense(keras.layers.Dense):
        ...     pass
        >>> layers = Registry("layer", keras_serializable=False)
        >>> _ = layers.register("dense")(Dense)
        >>> layers.get("dense") is Dense
        True
        >>> layers.get("dens", field="block")
        Traceback (most recent call last):
        ...
        ValueError: block='dens' is not a registered layer. Did you mean 'dense'? Available: dense
    """

    def __init__(self, kind, keras_serializable=True):
        self.kind = kind
        self.keras_serializable = keras_serializable
        self._entries = {}

    def register(self, name):
        """Return a decorator that registers a class under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")

        def decorator(cls):
            existing = self._entries.get(name)
            if existing is not None and existing is not cls:
                # Re-registration of the same qualified class (module reload in
                # a notebook) is fine; two different classes under one name is not.
                if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
                    raise ValueError(
                        f"{self.kind} '{name}' is already registered to "
                        f"{existing.__module__}.{existing.__qualname__}."
                    )
            if self.keras_serializable:
                # A saved model names its classes "keras_mm>ClassName": a second class of that name (a user's
                # ConcatFusion registered as "concat_v2") silently took over loading models built with the first.
                taken = keras.saving.get_registered_object(f"{PACKAGE}>{cls.__name__}")
                if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
                    raise ValueError(
                        f"{self.kind} '{name}': the class name {cls.__name__!r} is already used by "
                        f"{taken.__module__}.{taken.__qualname__}, and saved models name classes by it, so a .keras "
                        f"file could not tell the two apart. Give the class another name (e.g. "
                        f"{cls.__name__}{name.title().replace('_', '')})."
                    )
            cls.registered_name_in_zoo = name
            if self.keras_serializable:
                keras.saving.register_keras_serializable(package=PACKAGE, name=cls.__name__)(cls)
            self._entries[name] = cls
            return cls

        return decorator

    def names(self):
        return sorted(self._entries)

    def items(self):
        return sorted(self._entries.items())

    def __contains__(self, name):
        return name in self._entries

    def get(self, name, field=None):
        """Look up ``name``; a miss raises ``ValueError`` naming the field and the choices."""
        field = field or self.kind
        if name not in self._entries:
            hint = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(
                f"{field}={name!r} is not a registered {self.kind}.{hint} "
                f"Available: {', '.join(self.names())}"
            )
        return self._entries[name]


def constructor_arguments(cls):
    """Return (all argument names, required argument names) of ``cls``'s constructor.

    Follows ``**kwargs`` up the class hierarchy (a subclass that forwards
    ``**kwargs`` to its parent accepts the parent's arguments too), stopping at
    Keras' own base classes.
    """
    names, required = [], []
    first = True
    for klass in cls.__mro__:
        if klass.__module__.startswith("keras.") or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        forwards = False
        for pname, p in params.items():
            if pname == "self" or p.kind == p.VAR_POSITIONAL:
                continue
            if p.kind == p.VAR_KEYWORD:
                forwards = True
                continue
            if pname not in names:
                names.append(pname)
                # Only the class's own required arguments are the user's to give;
                # a parent's are filled in by the subclass.
                if first and p.default is p.empty:
                    required.append(pname)
        first = False
        if not forwards:
            break
    return names, required


# Arguments accepted by every Keras layer that users may legitimately pass.
_KERAS_LAYER_KWARGS = ("name", "dtype", "trainable")


def validate_kwargs(cls, kwargs, field, provided_by_builder=()):
    """Check ``kwargs`` against ``cls``'s constructor; raise a ``ValueError`` naming ``field``.

    Args:
        cls: the registered class.
        kwargs: the user's arguments.
        field: where they came from, e.g. ``"encoders['image']"``.
        provided_by_builder: argument names the builder fills in itself.
    """
    names, required = constructor_arguments(cls)
    allowed = set(names) | set(_KERAS_LAYER_KWARGS)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"{field}: unknown argument(s) {', '.join(repr(u) for u in unknown)} for "
            f"{cls.registered_name_in_zoo!r}. Allowed: {', '.join(sorted(n for n in names if n not in provided_by_builder))}"
        )
    missing = [r for r in required if r not in kwargs and r not in provided_by_builder]
    if missing:
        raise ValueError(
            f"{field}: missing required argument(s) {', '.join(repr(m) for m in missing)} "
            f"for {cls.registered_name_in_zoo!r}."
        )


ENCODERS = Registry("encoder")
#: Kinds of data (image, text, audio, ...): plain classes, not Keras layers.
MODALITIES = Registry("modality", keras_serializable=False)
FUSIONS = Registry("fusion")
HEADS = Registry("head")

register_encoder = ENCODERS.register
register_modality = MODALITIES.register
register_fusion = FUSIONS.register
register_head = HEADS.register


def list_encoders(modality=None):
    """Names of registered encoders, optionally only those of one modality.

    Example:
        >>> {"mfcc_cnn", "mfcc_gru"} <= set(keras_mm.list_encoders("audio"))   # plus any you register
        True
    """
    if modality is None:
        return ENCODERS.names()
    MODALITIES.get(modality, field="modality")
    return [n for n, cls in ENCODERS.items() if cls.modality == modality]


def list_modalities():
    """Names of registered modalities.

    Example:
        >>> {"audio", "image", "text"} <= set(keras_mm.list_modalities())   # plus any you register
        True
    """
    return MODALITIES.names()


def list_fusions():
    """Names of registered fusions. Example: ``keras_mm.list_fusions()``."""
    return FUSIONS.names()


def list_heads():
    """Names of registered heads. Example: ``keras_mm.list_heads()``."""
    return HEADS.names()
