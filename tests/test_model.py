"""GraphixT5ForConditionalGeneration: the contracts against plain T5, batching and checkpoints."""

from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from graphix.errors import InputError
from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration

VOCAB_SIZE = 40
NUM_RELATIONS = 6
T5_SHAPE = dict(
    vocab_size=VOCAB_SIZE,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_heads=4,
    num_layers=3,
    num_decoder_layers=2,
    decoder_start_token_id=0,
)
GRAPH_KEYS = ("graph_edge_index", "graph_edge_type", "graph_node_batch", "graph_node_spans")

# Batched and per-example runs pad to different lengths, so float32 sums differ in the last
# bits; this bound is about 100 times the differences seen.
BATCH_TOLERANCE = 1e-4


def _config(**overrides) -> GraphixT5Config:
    settings = dict(T5_SHAPE, graph_num_heads=2, graph_head_dim=8, num_relations=NUM_RELATIONS)
    settings.update(overrides)
    return GraphixT5Config(**settings)


def _model(seed=0, **overrides) -> GraphixT5ForConditionalGeneration:
    torch.manual_seed(seed)
    return GraphixT5ForConditionalGeneration(_config(**overrides)).eval()


def _example(length: int, num_nodes: int, num_edges: int, seed: int) -> dict:
    """One example: token ids, consecutive node spans of 1-2 tokens, unique random edges."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB_SIZE, (length,), generator=generator)
    input_ids[-1] = 1  # </s>
    starts = torch.arange(num_nodes) * 2
    ends = starts + 1 + torch.randint(0, 2, (num_nodes,), generator=generator)
    assert 2 * num_nodes <= length - 1, "spans must end before </s>"
    pairs = torch.cartesian_prod(torch.arange(num_nodes), torch.arange(num_nodes))
    edges = pairs[torch.randperm(pairs.shape[0], generator=generator)[:num_edges]]
    return {
        "input_ids": input_ids,
        "edge_index": edges.t().reshape(2, -1),
        "edge_type": torch.randint(0, NUM_RELATIONS, (edges.shape[0],), generator=generator),
        "node_spans": torch.stack([starts, ends], dim=1).reshape(-1, 2),
        "labels": torch.randint(3, VOCAB_SIZE, (6,), generator=generator),
    }


def _collate(examples: list[dict]) -> dict:
    """Pad tokens on the right and merge the graphs into one disjoint graph."""
    max_length = max(example["input_ids"].numel() for example in examples)
    input_ids = torch.zeros(len(examples), max_length, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    edge_index, edge_type, node_batch, node_spans = [], [], [], []
    offset = 0
    for index, example in enumerate(examples):
        length = example["input_ids"].numel()
        input_ids[index, :length] = example["input_ids"]
        attention_mask[index, :length] = 1
        num_nodes = example["node_spans"].shape[0]
        edge_index.append(example["edge_index"] + offset)
        edge_type.append(example["edge_type"])
        node_batch.append(torch.full((num_nodes,), index))
        node_spans.append(example["node_spans"])
        offset += num_nodes
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.stack([example["labels"] for example in examples]),
        "graph_edge_index": torch.cat(edge_index, dim=1),
        "graph_edge_type": torch.cat(edge_type),
        "graph_node_batch": torch.cat(node_batch),
        "graph_node_spans": torch.cat(node_spans),
    }


EXAMPLES = [
    _example(length=12, num_nodes=5, num_edges=12, seed=1),
    _example(length=7, num_nodes=0, num_edges=0, seed=2),  # an example without a graph
    _example(length=16, num_nodes=7, num_edges=20, seed=3),
]


def _without_graph(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key not in GRAPH_KEYS}


def _plain_t5_copy(model: GraphixT5ForConditionalGeneration) -> T5ForConditionalGeneration:
    plain = T5ForConditionalGeneration(T5Config(**T5_SHAPE)).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == []
    assert all("graph_layer" in key or "relation_embedding" in key for key in unexpected)
    return plain


@pytest.mark.parametrize("mode", ["use_graph_false", "no_graph_inputs", "no_graph_layers"])
def test_disabled_graph_equals_plain_t5(mode):
    overrides = {"use_graph": False} if mode == "use_graph_false" else {}
    if mode == "no_graph_layers":
        overrides = {"graph_layer_indices": []}
    model = _model(**overrides)
    plain = _plain_t5_copy(model)
    batch = _collate(EXAMPLES)
    inputs = _without_graph(batch) if mode == "no_graph_inputs" else batch

    with torch.no_grad():
        logits = model(**inputs).logits
        expected = plain(**_without_graph(batch)).logits

    assert torch.equal(logits, expected)


def test_graph_changes_output():
    model = _model()
    batch = _collate(EXAMPLES)
    with torch.no_grad():
        with_graph = model(**batch).logits
        without_graph = model(**_without_graph(batch)).logits
    # Examples 0 and 2 have graphs; example 1 has none and must not change.
    assert not torch.allclose(with_graph[0], without_graph[0])
    assert not torch.allclose(with_graph[2], without_graph[2])
    assert torch.equal(with_graph[1], without_graph[1])


def test_default_config_trains_and_generates():
    torch.manual_seed(0)
    config = GraphixT5Config(vocab_size=VOCAB_SIZE, d_model=16, d_kv=4, d_ff=32, num_layers=1)
    model = GraphixT5ForConditionalGeneration(config)
    batch = _collate(EXAMPLES[:1])
    assert config.decoder_start_token_id == 0
    assert torch.isfinite(model(**batch).loss)
    generated = model.eval().generate(**_without_labels(batch), max_new_tokens=3)
    assert generated[0, 0].item() == 0


def test_graph_on_some_blocks_only():
    model = _model(graph_layer_indices=[1])
    assert model.encoder.block[0].graph_layer is None
    assert model.encoder.block[1].graph_layer is not None
    assert model.encoder.block[2].graph_layer is None


def test_batched_equals_single():
    model = _model()
    batch = _collate(EXAMPLES)
    with torch.no_grad():
        batched = model(**batch)
        for index, example in enumerate(EXAMPLES):
            single = model(**_collate([example]))
            torch.testing.assert_close(
                batched.logits[index], single.logits[0], atol=BATCH_TOLERANCE, rtol=0
            )
            length = example["input_ids"].numel()
            torch.testing.assert_close(
                batched.encoder_last_hidden_state[index, :length],
                single.encoder_last_hidden_state[0],
                atol=BATCH_TOLERANCE,
                rtol=0,
            )


def test_parameters_finite_after_init():
    model = _model()
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter).all(), name


def test_init_follows_t5_rules():
    model = _model()
    encoder_query = model.encoder.block[1].layer[0].SelfAttention.q.weight
    decoder_query = model.decoder.block[1].layer[0].SelfAttention.q.weight
    expected_std = (T5_SHAPE["d_model"] * T5_SHAPE["d_kv"]) ** -0.5
    assert encoder_query.std().item() == pytest.approx(expected_std, rel=0.2)
    assert decoder_query.std().item() == pytest.approx(expected_std, rel=0.2)
    assert torch.equal(model.encoder.block[0].graph_layer.layer_norm.weight, torch.ones(32))


def test_init_is_deterministic():
    first, second = _model(seed=7).state_dict(), _model(seed=7).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_loads_t5_checkpoint(tmp_path):
    torch.manual_seed(3)
    plain = T5ForConditionalGeneration(T5Config(**T5_SHAPE))
    plain.save_pretrained(tmp_path)

    model = GraphixT5ForConditionalGeneration.from_pretrained(tmp_path)

    plain_state, model_state = plain.state_dict(), model.state_dict()
    for key, value in plain_state.items():
        assert torch.equal(model_state[key], value), key
    added = set(model_state) - set(plain_state)
    assert {key.split(".graph_layer.")[0] for key in added if "graph_layer" in key} == {
        f"encoder.block.{index}" for index in range(T5_SHAPE["num_layers"])
    }
    assert {"relation_embedding.key", "relation_embedding.value"} <= added
    for key in added:
        assert torch.isfinite(model_state[key]).all(), key
        assert model_state[key].abs().sum() > 0, key
    assert model.config.num_relations == 25


def test_save_load_round_trip(tmp_path):
    model = _model(graph_layer_indices=[0, 2])
    model.save_pretrained(tmp_path)
    loaded = GraphixT5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    batch = _collate(EXAMPLES)

    assert loaded.config.graph_layer_indices == [0, 2]
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)


def test_generate_beams_batch_matches_single():
    model = _model()
    batch = _collate(EXAMPLES)
    settings = dict(num_beams=3, max_new_tokens=8, do_sample=False)
    batched = model.generate(**_without_labels(batch), **settings)
    for index, example in enumerate(EXAMPLES):
        single = model.generate(**_without_labels(_collate([example])), **settings)
        length = single.shape[1]
        assert batched[index, :length].tolist() == single[0].tolist()
        assert (batched[index, length:] == model.config.pad_token_id).all()


def test_generate_uses_graph():
    model = _model()
    batch = _without_labels(_collate(EXAMPLES[:1]))
    settings = dict(num_beams=2, max_new_tokens=6, do_sample=False, output_scores=True)
    settings["return_dict_in_generate"] = True
    with_graph = model.generate(**batch, **settings)
    without_graph = model.generate(**_without_graph(batch), **settings)
    with torch.no_grad():
        encoder_outputs = model.encode(**batch)
    precomputed = model.generate(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        encoder_outputs=encoder_outputs,
        **settings,
    )
    assert not torch.equal(with_graph.scores[0], without_graph.scores[0])
    assert torch.equal(with_graph.scores[0], precomputed.scores[0])


def _without_labels(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key != "labels"}


def test_training_step_reaches_graph_parameters():
    model = _model().train()
    model(**_collate(EXAMPLES)).loss.backward()
    for name, parameter in model.named_parameters():
        if "graph_layer" in name or "relation_embedding" in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradient_checkpointing_matches():
    batch = _collate(EXAMPLES)
    gradients = []
    for checkpointing in (False, True):
        model = _model(dropout_rate=0.0).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        model(**batch).loss.backward()
        gradients.append(model.encoder.block[1].graph_layer.query.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


def test_incomplete_graph_inputs_rejected():
    model = _model()
    batch = _collate(EXAMPLES)
    del batch["graph_node_spans"]
    with pytest.raises(InputError, match="graph_node_spans missing"):
        model(**batch)


def test_relation_out_of_range_rejected():
    model = _model()
    batch = _collate(EXAMPLES)
    batch["graph_edge_type"][0] = NUM_RELATIONS
    with pytest.raises(InputError, match="relation ids outside"):
        model(**batch)
