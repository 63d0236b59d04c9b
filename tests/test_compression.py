"""Layer drop, attention sharing, similarity and distillation on tiny random models."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from graphix.compression.attention_sharing import (
    LeadingAttention,
    ProbabilitySlot,
    ReusingAttention,
    group_similar_layers,
    share_attention,
)
from graphix.compression.distillation import (
    DistillationConfig,
    distillation_loss,
    model_batch,
    train_student,
)
from graphix.compression.layer_drop import drop_by_similarity, drop_sublayers
from graphix.compression.similarity import measure_similarity
from graphix.compression.structure import Sublayer, present_sublayers, sublayer_module
from graphix.errors import ConfigError, InputError
from graphix.graph import NUM_RELATIONS
from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration

VOCAB_SIZE = 40
D_MODEL, D_FF, D_KV, HEADS = 16, 24, 4, 2
INNER = D_KV * HEADS
GRAPH_HEADS, GRAPH_HEAD_DIM = 2, 4


def _model(seed: int = 0, **overrides) -> GraphixT5ForConditionalGeneration:
    settings = dict(vocab_size=VOCAB_SIZE, d_model=D_MODEL, d_ff=D_FF, d_kv=D_KV,
                    num_heads=HEADS, num_layers=3, num_decoder_layers=3,
                    graph_num_heads=GRAPH_HEADS, graph_head_dim=GRAPH_HEAD_DIM,
                    num_relations=NUM_RELATIONS, pad_token_id=0, eos_token_id=1,
                    decoder_start_token_id=0)
    settings.update(overrides)
    torch.manual_seed(seed)
    return GraphixT5ForConditionalGeneration(GraphixT5Config(**settings)).eval()


def _record(length: int, num_nodes: int, num_edges: int, seed: int) -> dict:
    """A preprocessed-record lookalike: tokens ending in </s>, node spans, edges, labels."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB_SIZE, (length,), generator=generator)
    input_ids[-1] = 1
    starts = torch.arange(num_nodes) * 2
    pairs = torch.cartesian_prod(torch.arange(num_nodes), torch.arange(num_nodes))
    edges = pairs[torch.randperm(pairs.shape[0], generator=generator)[:num_edges]]
    labels = torch.randint(3, VOCAB_SIZE, (5,), generator=generator)
    labels[-1] = 1
    return {"input_ids": input_ids, "labels": labels,
            "node_spans": torch.stack([starts, starts + 1], dim=1),
            "edge_index": edges.t().reshape(2, -1),
            "edge_type": torch.randint(0, NUM_RELATIONS, (edges.shape[0],), generator=generator)}


RECORDS = [_record(10, 4, 9, seed=1), _record(7, 3, 5, seed=2), _record(12, 5, 14, seed=3)]


def _batch() -> dict:
    return model_batch(RECORDS, use_graph=True)


def _logits(model, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def _generate(model, batch: dict, **kwargs) -> torch.Tensor:
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    return model.generate(**inputs, max_new_tokens=6, do_sample=False, **kwargs)


def _parameter_count(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# ---------------------------------------------------------------------- no-op contracts


def test_dropping_nothing_changes_nothing():
    model = _model()
    batch = _batch()
    before = _logits(model, batch)
    names = [name for name, _ in model.named_parameters()]
    drop_sublayers(model, [])
    assert drop_by_similarity(model, [batch], "attention", "both", count=0).dropped == []
    assert torch.equal(_logits(model, batch), before)
    assert [name for name, _ in model.named_parameters()] == names


def test_sharing_above_threshold_one_changes_nothing():
    model = _model()
    batch = _batch()
    before = _logits(model, batch)
    report = measure_similarity(model, [batch])
    groups = group_similar_layers(report, threshold=1.0001)
    assert groups == []
    share_attention(model, groups)
    assert torch.equal(_logits(model, batch), before)
    for config in (model.config, model.encoder.config, model.decoder.config,
                   model.decoder.block[1].layer[1].EncDecAttention.config):
        assert config._attn_implementation == "sdpa"


# ---------------------------------------------------------------------- structure and checkpoints

COMPRESSIONS = {
    "drop encoder block 0": ("drop", ["encoder.block.0"]),
    "drop decoder self-attention 0": ("drop", ["decoder.self_attention.0"]),
    "drop mixed": ("drop", ["decoder.cross_attention.1", "encoder.mlp.2", "encoder.graph.1",
                            "decoder.block.2"]),
    "share encoder": ("share", ["encoder.self_attention.0-2"]),
    "share decoder": ("share", ["decoder.self_attention.1-2", "decoder.cross_attention.0-1"]),
}


def _compress(model, method: str, names: list[str]):
    return (drop_sublayers if method == "drop" else share_attention)(model, names)


@pytest.mark.parametrize("method,names", COMPRESSIONS.values(), ids=COMPRESSIONS.keys())
def test_compressed_model_round_trips(tmp_path, method, names):
    model = _compress(_model(), method, names)
    batch = _batch()
    model.save_pretrained(tmp_path)
    loaded = GraphixT5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.dropped_sublayers == model.config.dropped_sublayers
    assert loaded.config.shared_attention == model.config.shared_attention
    assert dict(loaded.state_dict()).keys() == dict(model.state_dict()).keys()
    assert torch.equal(_logits(loaded, batch), _logits(model, batch))
    assert torch.equal(_generate(loaded, batch, num_beams=2), _generate(model, batch, num_beams=2))


@pytest.mark.parametrize("method,names", COMPRESSIONS.values(), ids=COMPRESSIONS.keys())
def test_cached_generation_matches_uncached(method, names):
    model = _compress(_model(), method, names)
    batch = _batch()
    for beams in (1, 3):
        cached = _generate(model, batch, num_beams=beams, use_cache=True)
        uncached = _generate(model, batch, num_beams=beams, use_cache=False)
        assert torch.equal(cached, uncached)


def test_compression_changes_output():
    batch = _batch()
    original = _logits(_model(), batch)
    for method, names in COMPRESSIONS.values():
        assert not torch.allclose(_logits(_compress(_model(), method, names), batch), original)


def test_undropped_parameter_names_unchanged():
    model = _model()
    before = {name for name, _ in model.named_parameters()}
    drop_sublayers(model, ["encoder.mlp.1", "decoder.cross_attention.2"])
    after = {name for name, _ in model.named_parameters()}
    assert after < before
    removed = before - after
    assert all(name.startswith(("encoder.block.1.layer.1.", "decoder.block.2.layer.1."))
               for name in removed)


ATTENTION = 4 * D_MODEL * INNER + D_MODEL  # q, k, v, o and the sublayer's layer norm
MLP = 2 * D_MODEL * D_FF + D_MODEL
GRAPH_WIDTH = GRAPH_HEADS * GRAPH_HEAD_DIM
GRAPH = 4 * D_MODEL * GRAPH_WIDTH + D_MODEL  # query, key, value, output and layer norm


@pytest.mark.parametrize("names,removed", [
    (["decoder.self_attention.1"], ATTENTION),
    (["decoder.cross_attention.0", "encoder.self_attention.2"], 2 * ATTENTION),
    (["encoder.mlp.0"], MLP),
    (["encoder.graph.1"], GRAPH),
    (["encoder.block.1"], ATTENTION + MLP + GRAPH),
    (["decoder.block.2"], 2 * ATTENTION + MLP),
])
def test_dropping_removes_expected_parameters(names, removed):
    model = _model()
    before = _parameter_count(model)
    drop_sublayers(model, names)
    assert before - _parameter_count(model) == removed


def test_graph_layer_parameter_count_matches_module():
    block = _model().encoder.block[0]
    assert sum(p.numel() for p in block.graph_layer.parameters()) == GRAPH


@pytest.mark.parametrize("groups,removed", [
    (["encoder.self_attention.0-2"], 2 * 2 * D_MODEL * INNER),
    (["decoder.self_attention.0-1", "decoder.cross_attention.1-2"], 2 * 2 * D_MODEL * INNER),
])
def test_sharing_removes_query_and_key_projections(groups, removed):
    model = _model()
    before = _parameter_count(model)
    share_attention(model, groups)
    assert before - _parameter_count(model) == removed
    follower = model.encoder.block[1].layer[0].SelfAttention if groups[0].startswith(
        "encoder") else model.decoder.block[1].layer[0].SelfAttention
    assert isinstance(follower, ReusingAttention)
    assert not hasattr(follower, "q") and not hasattr(follower, "k")


# ---------------------------------------------------------------------- position bias


class _BiasOnly(nn.Module):
    """Reference stand-in for a removed first sublayer: computes T5's bias, changes nothing."""

    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, hidden_states, *args, **kwargs):
        length = hidden_states.shape[1]
        return hidden_states, self.attention.compute_bias(length, length), None


@pytest.mark.parametrize("stack", ["encoder", "decoder"])
@pytest.mark.parametrize("kind", ["block", "self_attention"])
def test_dropping_first_sublayer_keeps_position_bias(stack, kind):
    batch = _batch()
    reference = _model()
    dropped = drop_sublayers(_model(), [f"{stack}.{kind}.0"])

    # The reference keeps the original bias table in a stand-in that adds nothing else.
    first = getattr(reference, stack).block[0]
    original_attention = first.layer[0].SelfAttention
    if kind == "block":
        getattr(reference, stack).block[0] = _BiasOnly(original_attention)
    else:
        first.layer[0] = _BiasOnly(original_attention)
    expected = _logits(reference, batch)

    output = _logits(dropped, batch)
    assert torch.isfinite(output).all()
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    holder = getattr(dropped, stack).block[1].layer[0].SelfAttention
    assert holder.has_relative_attention_bias
    assert torch.equal(holder.relative_attention_bias.weight,
                       original_attention.relative_attention_bias.weight)

    # Without the bias the output differs, so the comparison above can fail.
    del holder.relative_attention_bias
    holder.has_relative_attention_bias = False
    assert not torch.allclose(_logits(dropped, batch), expected, atol=1e-3)


def test_dropping_all_self_attention_is_refused():
    model = _model(num_layers=2)
    with pytest.raises(ConfigError, match="without self-attention"):
        drop_sublayers(model, ["encoder.self_attention.0", "encoder.block.1"])
    assert model.config.dropped_sublayers is None


@pytest.mark.parametrize("names,message", [
    (["encoder.cross_attention.0"], "not present"),
    (["decoder.mlp.3"], "not present"),
    (["decoder.attention.0"], "not stack.kind.index"),
])
def test_bad_drop_names_are_rejected(names, message):
    with pytest.raises(InputError, match=message):
        drop_sublayers(_model(), names)


@pytest.mark.parametrize("field,value", [
    ("dropped_sublayers", ["encoder.cross_attention.0"]),
    ("dropped_sublayers", ["decoder.mlp.7"]),
    ("shared_attention", ["encoder.self_attention.2-1"]),
    ("shared_attention", ["decoder.cross_attention.0-5"]),
])
def test_config_rejects_bad_compression_fields(field, value):
    with pytest.raises(ConfigError, match=field):
        _model(**{field: value})


def test_checkpoint_without_compression_fields_loads(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("dropped_sublayers", None)
    config.pop("shared_attention", None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GraphixT5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.dropped_sublayers is None and loaded.config.shared_attention is None
    batch = _batch()
    assert torch.equal(_logits(loaded, batch), _logits(model, batch))


def test_overlapping_or_dropped_groups_are_refused():
    model = _model()
    share_attention(model, ["encoder.self_attention.0-1"])
    with pytest.raises(InputError, match="overlaps"):
        share_attention(model, ["encoder.self_attention.1-2"])
    with pytest.raises(InputError, match="share attention"):
        drop_sublayers(model, ["encoder.block.1"])
    dropped = drop_sublayers(_model(), ["decoder.self_attention.1"])
    with pytest.raises(InputError, match="dropped"):
        share_attention(dropped, ["decoder.self_attention.0-2"])


# ---------------------------------------------------------------------- shared attention


def test_follower_applies_leader_probabilities():
    model = _model()
    leader_attention = model.encoder.block[0].layer[0].SelfAttention
    follower_attention = model.encoder.block[1].layer[0].SelfAttention
    slot = ProbabilitySlot()
    leader = LeadingAttention.from_attention(leader_attention, slot).eval()
    follower = ReusingAttention.from_attention(follower_attention, slot, clears_slot=True).eval()
    torch.manual_seed(5)
    first, second = torch.randn(2, 5, D_MODEL), torch.randn(2, 5, D_MODEL)

    with torch.no_grad():
        leader_output, bias, probabilities = leader(first)
        follower_output, passed_bias, _ = follower(second, position_bias=bias)

    # By hand: softmax(q k^T + bias) for the leader, then o(P v) with the follower's v and o.
    query = (first @ leader_attention.q.weight.T).view(2, 5, HEADS, D_KV).transpose(1, 2)
    key = (first @ leader_attention.k.weight.T).view(2, 5, HEADS, D_KV).transpose(1, 2)
    expected_probabilities = torch.softmax(query @ key.transpose(2, 3) + bias, dim=-1)
    value = (second @ follower_attention.v.weight.T).view(2, 5, HEADS, D_KV).transpose(1, 2)
    mixed = (expected_probabilities @ value).transpose(1, 2).reshape(2, 5, INNER)
    torch.testing.assert_close(probabilities, expected_probabilities)
    torch.testing.assert_close(follower_output, mixed @ follower_attention.o.weight.T)
    assert passed_bias is bias
    with pytest.raises(RuntimeError, match="before the first layer"):
        follower(second, position_bias=bias)


def test_leading_attention_matches_t5_attention():
    model = _model()
    batch = _batch()
    before = _logits(model, batch)
    for stack, kind, attribute, position in (("encoder", "self_attention", "SelfAttention", 0),
                                             ("decoder", "self_attention", "SelfAttention", 0),
                                             ("decoder", "cross_attention", "EncDecAttention", 1)):
        layer = getattr(model, stack).block[2].layer[position]
        setattr(layer, attribute, LeadingAttention.from_attention(getattr(layer, attribute),
                                                                  ProbabilitySlot()))
    torch.testing.assert_close(_logits(model, batch), before, rtol=1e-5, atol=1e-5)


def test_copied_model_gets_its_own_slot():
    model = share_attention(_model(), ["encoder.self_attention.0-1"])
    copied = copy.deepcopy(model)
    leader = copied.encoder.block[0].layer[0].SelfAttention
    follower = copied.encoder.block[1].layer[0].SelfAttention
    assert leader.slot is follower.slot
    assert leader.slot is not model.encoder.block[0].layer[0].SelfAttention.slot
    batch = _batch()
    assert torch.equal(_logits(copied, batch), _logits(model, batch))


# ---------------------------------------------------------------------- similarity


def test_identity_sublayer_scores_one_and_is_dropped_first():
    model = _model()
    with torch.no_grad():
        model.decoder.block[1].layer[-1].DenseReluDense.wo.weight.zero_()
    batch = _batch()
    report = measure_similarity(model, [batch])
    assert report.sublayer_similarity["decoder.mlp.1"] == pytest.approx(1.0, abs=1e-12)
    assert all(score < 1 - 1e-6 for name, score in report.sublayer_similarity.items()
               if name != "decoder.mlp.1" and ".graph." not in name)
    result = drop_by_similarity(model, [batch], "mlp", "both", count=1)
    assert result.dropped == ["decoder.mlp.1"]


def test_report_covers_every_sublayer():
    model = _model()
    report = measure_similarity(model, [_batch()])
    assert set(report.sublayer_similarity) == {str(s) for s in present_sublayers(model)}
    assert set(report.attention_similarity) == {
        "encoder.self_attention", "decoder.self_attention", "decoder.cross_attention"}
    for matrix in report.attention_similarity.values():
        assert [matrix[i][i] for i in range(3)] == pytest.approx([1.0] * 3)
        assert matrix[0][2] == pytest.approx(matrix[2][0])
    assert report.examples == len(RECORDS)


def test_padding_does_not_change_similarity():
    model = _model()
    batch = model_batch(RECORDS[:1], use_graph=True)
    padded = dict(batch)
    padded["input_ids"] = torch.cat([batch["input_ids"], torch.zeros(1, 4, dtype=torch.long)], 1)
    padded["attention_mask"] = torch.cat([batch["attention_mask"],
                                          torch.zeros(1, 4, dtype=torch.long)], 1)
    padded["labels"] = torch.cat([batch["labels"], torch.full((1, 3), -100)], 1)
    plain = measure_similarity(model, [batch])
    with_padding = measure_similarity(model, [padded])
    for name, score in plain.sublayer_similarity.items():
        assert with_padding.sublayer_similarity[name] == pytest.approx(score, abs=1e-5), name
    for key, matrix in plain.attention_similarity.items():
        torch.testing.assert_close(torch.tensor(with_padding.attention_similarity[key]),
                                   torch.tensor(matrix), rtol=0, atol=1e-5)


def test_equal_attention_maps_are_grouped():
    model = _model()
    # With zero queries, scores are the position bias alone, the same in both layers.
    with torch.no_grad():
        for index in (1, 2):
            model.encoder.block[index].layer[0].SelfAttention.q.weight.zero_()
    report = measure_similarity(model, [_batch()])
    matrix = report.attention_similarity["encoder.self_attention"]
    assert matrix[1][2] == pytest.approx(1.0, abs=1e-9)
    assert matrix[0][1] < 0.999
    groups = group_similar_layers(report, 0.9999)
    assert "encoder.self_attention.1-2" in groups
    assert not any(group.startswith("encoder.self_attention.0") for group in groups)


def test_iterative_drop_measures_again():
    model = _model()
    kinds = ("self_attention", "cross_attention")
    result = drop_by_similarity(model, [_batch()], "attention", "decoder", count=2,
                                iterative=True)
    assert len(result.dropped) == 2
    assert len(result.reports) == 2
    assert result.dropped[0] == result.reports[0].most_redundant(kinds, ("decoder",))[0]
    assert result.dropped[0] not in result.reports[1].sublayer_similarity
    assert result.dropped[1] == result.reports[1].most_redundant(kinds, ("decoder",))[0]
    assert model.config.dropped_sublayers == result.dropped
    for name in result.dropped:
        assert sublayer_module(model, Sublayer.parse(name)) is None


# ---------------------------------------------------------------------- distillation


def test_distillation_loss_by_hand():
    class Output:
        def __init__(self, logits, loss=None):
            self.logits, self.loss = logits, loss

    student = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    teacher = torch.tensor([[[0.0, 1.0], [5.0, 0.0]]])
    labels = torch.tensor([[1, -100]])  # only the first position counts
    config = DistillationConfig(temperature=2.0, kl_weight=0.25)
    loss, parts = distillation_loss(Output(student, torch.tensor(3.0)), Output(teacher), labels,
                                    config)
    # At T = 2 the first position's distributions are softmax([0.5, 0]) and softmax([0, 0.5]).
    p_teacher = torch.softmax(torch.tensor([0.0, 0.5]), 0)
    p_student = torch.softmax(torch.tensor([0.5, 0.0]), 0)
    kl = float((p_teacher * (p_teacher.log() - p_student.log())).sum()) * 4
    assert parts["kl"] == pytest.approx(kl)
    assert float(loss) == pytest.approx(0.25 * kl + 0.75 * 3.0)


def test_distillation_brings_student_towards_teacher():
    teacher = _model(dropout_rate=0.0)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(20)  # a confident teacher, far from the shared student
    student = share_attention(copy.deepcopy(teacher), ["encoder.self_attention.0-2",
                                                      "decoder.self_attention.0-2"])
    batch = _batch()
    config = DistillationConfig(steps=30, batch_size=3, learning_rate=3e-3, kl_weight=1.0,
                                hidden_weight=0.1)

    def gap() -> float:
        _, parts = distillation_loss(student(**batch), teacher(**batch), batch["labels"],
                                     DistillationConfig(kl_weight=1.0))
        return parts["kl"]

    with torch.no_grad():
        before = gap()
    history = train_student(student, RECORDS, config, teacher=teacher)
    with torch.no_grad():
        after = gap()
    assert len(history) == 30 and "hidden" in history[0]
    assert after < 0.5 * before
    assert not student.training


def test_fine_tuning_without_teacher_lowers_cross_entropy():
    model = drop_sublayers(_model(), ["decoder.block.1"])
    batch = _batch()
    with torch.no_grad():
        before = float(model(**batch).loss)
    train_student(model, RECORDS, DistillationConfig(steps=20, batch_size=3, learning_rate=3e-3))
    with torch.no_grad():
        assert float(model(**batch).loss) < before
