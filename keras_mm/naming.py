"""How model input names are formed from a feature name (one place for the convention).

A feature's numeric inputs are named ``<feature>`` (the main tensor: pixels,
waveform) or ``<feature>_<kind>`` (``token_ids``, ``padding_mask``, ...), and
every feature has a ``<feature>_present`` flag. Build names with
:func:`input_name`; never assemble them by hand.

Example:
    >>> input_name("caption", "padding_mask")
    'caption_padding_mask'
    >>> input_name("image")
    'image'
    >>> input_name("audio", PRESENT)
    'audio_present'
"""

#: kind of the per-sample presence flag (float32 ``[batch]``: 1 present, 0 missing).
PRESENT = "present"
#: kind of a text feature's padding mask (int32 ``[batch, length]``).
PADDING_MASK = "padding_mask"
#: kind of a text feature's token ids.
TOKEN_IDS = "token_ids"
#: kind of the per-sample status output of the raw serving signatures (why a sample is missing).
STATUS = "status"


def input_name(feature, kind=""):
    """The model input name for ``feature``'s input of kind ``kind`` (``""``: the main tensor).

    Example:
        >>> input_name("text", TOKEN_IDS)
        'text_token_ids'
    """
    return f"{feature}_{kind}" if kind else feature


def presence_name(feature):
    """``<feature>_present``.

    Example:
        >>> presence_name("image")
        'image_present'
    """
    return input_name(feature, PRESENT)


#: extras output of a model with a head combination: the fused head's prediction before the combination
HEAD_OUTPUT = "head_output"


def auxiliary_name(feature):
    """``aux_<feature>``: the output of a feature's auxiliary (unimodal) head.

    Example:
        >>> auxiliary_name("image")
        'aux_image'
    """
    return f"aux_{feature}"


def model_class_names(model, class_names=None):
    """The class names to show for ``model``'s outputs: ``class_names`` when given, else the model's (or ``None``).

    Names given for a model that has its own must be the same list: other
    names would label every row of a table or response with another class's
    numbers.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn"}, class_names=["cat", "dog"])
        >>> model_class_names(model)
        ['cat', 'dog']
        >>> model_class_names(model, ["dog", "cat"])
        Traceback (most recent call last):
        ValueError: class_names=['dog', 'cat'] differ from the model's class_names ['cat', 'dog'] ...
    """
    own = getattr(model, "class_names", None)
    if class_names is None:
        return own
    class_names = [str(c) for c in class_names]
    if own is not None and class_names != list(own):
        raise ValueError(f"class_names={class_names} differ from the model's class_names {list(own)} (which name its "
                         "output ids); leave class_names out to use the model's.")
    return class_names
