"""tfadv uses public Keras/TensorFlow API only: no `keras.src`, no private attribute of another object.

A scan of the syntax trees of every module: imports of `keras.src` / `tensorflow.python`, and
`name._attribute` reads on anything but `self`, `cls` and tfadv's own modules, are refused,
naming file and line.
"""
import ast
import pathlib

import tfadv

PACKAGE = pathlib.Path(tfadv.__file__).parent
PRIVATE_PACKAGES = ("keras.src", "tensorflow.python", "keras._")
OWN = {"self", "cls", "masks"}  # masks: tfadv.analysis.masks, read by the CLI's inspect command


def private_uses(source, filename="<source>"):
    """``[(line, text)]`` of private Keras/TensorFlow uses in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith(PRIVATE_PACKAGES)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE_PACKAGES):
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and not (isinstance(node.value, ast.Name) and node.value.id in OWN)):
            found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Attribute) and node.attr == "__internal__"):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_private_keras_or_tensorflow_api():
    found = [f"{path.relative_to(PACKAGE)}:{line}: {text}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for line, text in private_uses(path.read_text(encoding="utf-8"), str(path))]
    assert not found, "\n".join(found)


def test_the_scan_catches_what_it_refuses():
    source = ("from keras.src.backend.tensorflow import trainer\n"
              "outputs = model._run_through_graph(images)\n"
              "self._cache = tf.__internal__.distribute\n")
    assert private_uses(source) == [(1, "keras.src.backend.tensorflow"), (2, "model._run_through_graph"),
                                    (3, "tf.__internal__")]
