"""A tiny cross-encoder in ONNX, built for tests of the ONNX reranker (``onnx``, a dev dependency, writes it).

It reads the question and the passage as one BERT-style pair, like a real cross-encoder, and scores the passage by
how many of its tokens the question also has, over the passage's length: input_ids, attention_mask and
token_type_ids in, logits ``[batch, 1]`` (or ``[batch, 2]``: not relevant, relevant) out. Small enough to build
in a test, real enough that onnxruntime runs it through the same code path as a downloaded model.
"""

from __future__ import annotations

from pathlib import Path


def lexical_cross_encoder(path: Path, classes: int = 1) -> Path:
    """Write the model to ``path`` and return it."""
    import onnx
    from onnx import TensorProto, helper

    ints = TensorProto.INT64
    inputs = [helper.make_tensor_value_info(n, ints, ["batch", "tokens"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])
    constants = [
        helper.make_tensor("axis1", ints, [1], [1]), helper.make_tensor("axis2", ints, [1], [2]),
        helper.make_tensor("axes12", ints, [2], [1, 2]), helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("zero", ints, [], [0]),
    ]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["token_type_ids"], ["second"], to=TensorProto.FLOAT),  # the passage's tokens
        helper.make_node("Equal", ["token_type_ids", "zero"], ["first_b"]),
        helper.make_node("Cast", ["first_b"], ["first_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["first_f", "mask"], ["first"]),  # the question's tokens
        helper.make_node("Unsqueeze", ["input_ids", "axis2"], ["ids_col"]),
        helper.make_node("Unsqueeze", ["input_ids", "axis1"], ["ids_row"]),
        helper.make_node("Equal", ["ids_col", "ids_row"], ["same_b"]),  # [batch, passage token, question token]
        helper.make_node("Cast", ["same_b"], ["same"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["second", "axis2"], ["second_col"]),
        helper.make_node("Unsqueeze", ["first", "axis1"], ["first_row"]),
        helper.make_node("Mul", ["same", "second_col"], ["in_passage"]),
        helper.make_node("Mul", ["in_passage", "first_row"], ["shared"]),
        helper.make_node("ReduceMax", ["shared"], ["hit"], keepdims=0, axes=[2]),  # passage token in the question?
        helper.make_node("ReduceSum", ["hit", "axis1"], ["hits"], keepdims=0),
        helper.make_node("ReduceSum", ["second", "axis1"], ["length"], keepdims=0),
        helper.make_node("Add", ["length", "one"], ["length1"]),
        helper.make_node("Div", ["hits", "length1"], ["score"]),
    ]
    if classes == 1:
        nodes.append(helper.make_node("Unsqueeze", ["score", "axis1"], ["logits"]))
    else:
        nodes += [helper.make_node("Neg", ["score"], ["not_score"]),
                  helper.make_node("Unsqueeze", ["not_score", "axis1"], ["c0"]),
                  helper.make_node("Unsqueeze", ["score", "axis1"], ["c1"]),
                  helper.make_node("Concat", ["c0", "c1"], ["logits"], axis=1)]
    graph = helper.make_graph(nodes, "lexical-cross-encoder", inputs, [logits], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
