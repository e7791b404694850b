"""Classes given by id or name (--pair, --classes, --pairs) resolved to the data set's ids: against
the data set's class names first, then the model's once it is loaded."""

from __future__ import annotations

from deepdig_fast.cli.errors import CLIError


def _class_id(value, data, model_classes, arg: str) -> int | None:
    """A class given by id or name -> its id in the data set; None when a name is not known (yet).

    A number is a class name first when the data set names its classes with numbers other than their
    ids (an image folder of classes "3" and "5": --pair 3,5 means those folders, ids 0 and 1)."""
    from deepdig_fast.data import number_names_class

    if number_names_class(value, data.classes):
        return [str(c) for c in data.classes].index(str(value))
    if isinstance(value, int):
        if not 0 <= value < data.num_classes:
            raise CLIError(f"{arg} classes must lie in [0, {data.num_classes}) for {data.name}, got {value}")
        return value
    for names in (data.classes, model_classes or []):
        names = [str(c) for c in names]
        for match in (lambda c: c == value, lambda c: c.lower() == value.lower()):
            hits = [i for i, c in enumerate(names) if match(c)]
            if len(hits) == 1 and hits[0] < data.num_classes:
                return hits[0]
    return None


def _resolve_classes(values, data, model_classes, final: bool, arg: str):
    """Class ids or names -> ids (a tuple); None while a name is unknown and not `final` (a zoo model's
    names, e.g. Hugging Face id2label, are known once it is loaded). A name known to neither the data
    set nor the model is a CLIError naming `arg`."""
    ids = [_class_id(c, data, model_classes, arg) for c in values]
    if None in ids and final:
        bad = next(c for c, i in zip(values, ids) if i is None)
        known = ", ".join(str(c) for c in (model_classes or data.classes)[:12])
        raise CLIError(
            f"{arg}: class {bad!r} is not a class name of {data.name} or of the model (classes: {known}"
            f"{', ...' if len(model_classes or data.classes) > 12 else ''})"
        )
    return None if None in ids else tuple(ids)


def _resolve_pair(pair, data, model_classes, final: bool):
    return _resolve_classes(pair, data, model_classes, final, "--pair")


def _resolve_atlas_scope(args, data, model_classes, final: bool):
    """(classes, pairs) of `deepdig atlas` as ids; (None, None) for 'all'; None while a name waits
    for the model's class names."""
    if args.classes is not None:
        ids = _resolve_classes(args.classes, data, model_classes, final, "--classes")
        return None if ids is None else (list(ids), None)
    if args.pairs is not None:
        pairs = [_resolve_classes(p, data, model_classes, final, "--pairs") for p in args.pairs]
        return None if None in pairs else (None, [tuple(p) for p in pairs])
    return None, None


def _named_classes(data, info):
    """The data set with the model's class names (e.g. Hugging Face id2label) when the data set only
    numbers its classes ("0", "1", ...) and the model names exactly that many."""
    import dataclasses

    names = info.get("classes")
    numbered = [str(i) for i in range(data.num_classes)]
    if names and len(names) == data.num_classes and [str(c) for c in data.classes] == numbered:
        return dataclasses.replace(data, classes=[str(c) for c in names])
    ours = [str(c).lower() for c in data.classes]
    theirs = [str(c).lower() for c in names or []]
    if theirs != ours and sorted(theirs) == sorted(ours):
        # the same names in another order: output i of the model is not class i of the data
        raise CLIError(
            f"--model names the classes {', '.join(map(str, names[:6]))}{', ...' if len(names) > 6 else ''} "
            f"but {data.name} orders them {', '.join(map(str, data.classes[:6]))}"
            f"{', ...' if len(data.classes) > 6 else ''}: output i of the model must be class i of the data "
            "(rename or reorder the class folders, or retrain the head)"
        )
    return data
