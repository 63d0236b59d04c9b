"""Drawings of question-schema link graphs (matplotlib), for debugging and docs."""

from __future__ import annotations

from pathlib import Path

from graphix.graph import Graph, NodeKind, Relation

_COLOURS = {NodeKind.QUESTION: "#8ecae6", NodeKind.TABLE: "#ffb703", NodeKind.COLUMN: "#95d5b2"}
_QUESTION_SIDE = {
    Relation.QUESTION_QUESTION_DIST1, Relation.QUESTION_QUESTION_MODIFIER,
    Relation.QUESTION_QUESTION_ARGUMENT, Relation.QUESTION_TABLE_EXACTMATCH,
    Relation.QUESTION_TABLE_PARTIALMATCH, Relation.QUESTION_COLUMN_EXACTMATCH,
    Relation.QUESTION_COLUMN_PARTIALMATCH, Relation.QUESTION_COLUMN_VALUEMATCH,
    Relation.QUESTION_COLUMN_STAR,
}
_SCHEMA_FORWARD = {
    Relation.TABLE_COLUMN_HAS, Relation.TABLE_COLUMN_PK, Relation.COLUMN_COLUMN_SAMETABLE,
    Relation.COLUMN_COLUMN_FK, Relation.TABLE_TABLE_FK, Relation.COLUMN_COLUMN_STAR,
}


def draw_graph(graph: Graph, out: Path, *, schema_edges: bool = False, title: str = "") -> None:
    """Draw `graph` to `out`: question tokens on top, tables in the middle, columns below.

    Every relation comes in a forward/reverse pair, so each node pair is drawn once with
    the forward relation's name. Without `schema_edges` only the schema items that a
    question edge reaches (and their tables) are shown.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = sorted(graph.edges())
    kinds = [NodeKind(kind) for kind in graph.node_kind]
    shown_edges = []
    for source, target, relation in edges:
        if relation in _QUESTION_SIDE or (schema_edges and relation in _SCHEMA_FORWARD):
            if relation == Relation.QUESTION_QUESTION_DIST1 and target < source:
                continue
            shown_edges.append((source, target, relation))

    visible = {node for node, kind in enumerate(kinds) if kind == NodeKind.QUESTION or schema_edges}
    visible.update(node for edge in shown_edges for node in edge[:2])
    column_table = _column_tables(graph, edges)
    visible.update(column_table[node] for node in list(visible) if node in column_table)
    if not schema_edges:
        shown_edges.extend(
            (table, column, relation) for source, target, relation in edges
            if relation in (Relation.TABLE_COLUMN_HAS, Relation.TABLE_COLUMN_PK)
            for table, column in [(source, target)] if table in visible and column in visible
        )

    positions = _layout(graph, kinds, sorted(visible), column_table)
    width = max(8.0, 0.9 * max(len(graph.node_kind), 1) ** 0.5 * 4)
    figure, axes = plt.subplots(figsize=(min(width, 40), 7))
    for source, target, relation in shown_edges:
        (x0, y0), (x1, y1) = positions[source], positions[target]
        axes.annotate("", xy=(x1, y1), xytext=(x0, y0),
                      arrowprops=dict(arrowstyle="-|>", color="#666666", lw=0.8,
                                      shrinkA=12, shrinkB=12, connectionstyle="arc3,rad=0.08"))
        label = relation.name.lower().split("_", 2)[-1].replace("_", "-")
        axes.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=6, color="#333333",
                  ha="center", va="center",
                  bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
    for node in sorted(visible):
        x, y = positions[node]
        axes.text(x, y, graph.node_text[node], fontsize=8, ha="center", va="center",
                  bbox=dict(boxstyle="round,pad=0.3", fc=_COLOURS[kinds[node]], ec="#333333"))
    handles = [plt.Line2D([], [], marker="s", ls="", color=colour, label=kind.name.lower())
               for kind, colour in _COLOURS.items()]
    axes.legend(handles=handles, loc="upper right", fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.set_xlim(-1, max(x for x, _ in positions.values()) + 1)
    axes.set_ylim(-0.6, 2.6)
    axes.axis("off")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=150)
    plt.close(figure)


def _column_tables(graph: Graph, edges) -> dict[int, int]:
    """Return the table node of every column node, from the column-table edges."""
    owners = {}
    for source, target, relation in edges:
        if relation in (Relation.COLUMN_TABLE_HAS, Relation.COLUMN_TABLE_PK):
            owners[source] = target
    return owners


def _layout(graph: Graph, kinds, nodes: list[int], column_table: dict[int, int]):
    """Place question tokens on row 2, tables on row 1 and columns on row 0."""
    questions = [n for n in nodes if kinds[n] == NodeKind.QUESTION]
    tables = [n for n in nodes if kinds[n] == NodeKind.TABLE]
    columns = [n for n in nodes if kinds[n] == NodeKind.COLUMN]
    columns.sort(key=lambda n: (column_table.get(n, -1), n))
    span = max(len(questions), len(columns), len(tables), 1)
    positions = {}
    for row, group in ((2, questions), (1, tables), (0, columns)):
        step = span / max(len(group), 1)
        for number, node in enumerate(group):
            positions[node] = (step * (number + 0.5), row)
    return positions
