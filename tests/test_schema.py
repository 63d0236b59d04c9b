"""Schemas from tables.json and from SQLite introspection."""

from __future__ import annotations

import json
import sqlite3

import pytest

from graphix.errors import DatabaseError, SchemaError
from graphix.schema import Schema, natural_name, spider_type

# Where Spider's tables.json and the SQLite files themselves genuinely differ.
# Spider records only the first column of a composite primary key.
# Spider lists SQLite's internal table sqlite_sequence in two databases.
SPIDER_LISTS_SQLITE_SEQUENCE = {"world_1", "store_1"}
# Foreign keys declared in the database file but absent from tables.json.
FOREIGN_KEYS_MISSING_FROM_TABLES_JSON = {
    "store_product": {("store_product", "product_id", "product", "product_id")},
    "loan_1": {("loan", "cust_id", "customer", "cust_id")},
}
# Columns whose declared SQLite type disagrees with the type tables.json gives them:
# sakila_1 declares no type for two enumeration columns, and formula_1 declares TEXT
# for columns that hold numbers.
TYPE_DISAGREEMENTS = {
    ("sakila_1", "film", "rating"), ("sakila_1", "film", "special_features"),
    ("formula_1", "circuits", "alt"), ("formula_1", "drivers", "number"),
    ("formula_1", "results", "position"), ("formula_1", "results", "laps"),
    ("formula_1", "results", "milliseconds"), ("formula_1", "results", "fastestlap"),
    ("formula_1", "results", "rank"), ("formula_1", "constructorresults", "status"),
}


def _make_db(path, statements):
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()
    return path


@pytest.fixture
def shop_db(tmp_path):
    return _make_db(tmp_path / "shop.sqlite", [
        "CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, full_name TEXT, joined DATE)",
        "CREATE TABLE Orders (order_id INT, customer_id INT REFERENCES Customer, total REAL, "
        "paid BOOL, PRIMARY KEY (order_id, customer_id))",
        "CREATE TABLE line (order_id INT, sku VARCHAR(20), "
        "FOREIGN KEY (order_id) REFERENCES Orders(order_id))",
    ])


def test_sqlite_introspection_tables_and_columns(shop_db):
    schema = Schema.from_sqlite(shop_db)
    assert schema.db_id == "shop"
    assert [t.name for t in schema.tables] == ["Customer", "Orders", "line"]
    assert [c.name for c in schema.columns] == [
        "*", "CustomerId", "full_name", "joined", "order_id", "customer_id", "total", "paid",
        "order_id", "sku",
    ]
    assert [c.type for c in schema.columns[1:]] == [
        "number", "text", "time", "number", "number", "number", "others", "number", "text",
    ]
    assert schema.columns[1].text == "customer id"


def test_sqlite_introspection_keys(shop_db):
    schema = Schema.from_sqlite(shop_db)
    assert schema.table("orders").primary_keys == ("order_id", "customer_id")
    assert schema.table("CUSTOMER").primary_keys == ("CustomerId",)
    # A REFERENCES clause without a column points at the referenced table's key.
    assert schema.foreign_key_pairs == ((5, 1), (8, 4))
    assert schema.primary_key_indices == (1, 4, 5)


def test_spider_entry_round_trip(shop_db):
    schema = Schema.from_sqlite(shop_db)
    entry = schema.to_spider_entry()
    again = Schema.from_spider_entry(json.loads(json.dumps(entry)))
    assert again.tables[0].columns == schema.tables[0].columns
    assert again.foreign_key_pairs == schema.foreign_key_pairs
    assert again.to_spider_entry() == entry


@pytest.mark.parametrize("identifier, expected", [
    ("HomeTown_ID", "home town id"),
    ("people_id", "people id"),
    ("Song_release_year", "song release year"),
    ("IATA", "iata"),
    ("XMLFile", "xml file"),
])
def test_natural_name(identifier, expected):
    assert natural_name(identifier) == expected


@pytest.mark.parametrize("declared, expected", [
    ("VARCHAR(255)", "text"), ("INTEGER", "number"), ("real", "number"),
    ("DATETIME", "time"), ("bool", "others"), ("BOOLEAN", "boolean"), ("", "others"), ("BLOB", "others"),
])
def test_spider_type(declared, expected):
    assert spider_type(declared) == expected


def test_missing_database_is_clear_error(tmp_path):
    with pytest.raises(DatabaseError, match="not found"):
        Schema.from_sqlite(tmp_path / "absent.sqlite")


def test_non_sqlite_file_is_clear_error(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("just some text, not a database")
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        Schema.from_sqlite(path)


def test_malformed_tables_json(tmp_path):
    path = tmp_path / "tables.json"
    path.write_text("[{\"db_id\": \"x\"")
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.load_spider_tables(path)
    path.write_text(json.dumps([{"db_id": "x", "table_names": []}]))
    with pytest.raises(SchemaError, match="missing the field"):
        Schema.load_spider_tables(path)


def _key_set(schema):
    return {
        (fk.table.lower(), fk.column.lower(), fk.ref_table.lower(), fk.ref_column.lower())
        for fk in schema.foreign_keys
    }


@pytest.mark.spider
def test_spider_tables_json_agrees_with_databases(spider):
    schemas = Schema.load_spider_tables(spider / "tables.json")
    checked = 0
    for db_id, listed in schemas.items():
        path = spider / "database" / db_id / f"{db_id}.sqlite"
        if not path.exists():
            continue
        checked += 1
        found = Schema.from_sqlite(path)

        listed_tables = [t.name.lower() for t in listed.tables]
        if db_id in SPIDER_LISTS_SQLITE_SEQUENCE:
            listed_tables.remove("sqlite_sequence")
        assert listed_tables == [t.name.lower() for t in found.tables], db_id

        for table in found.tables:
            spider_table = listed.table(table.name)
            assert [c.name.lower() for c in spider_table.columns] == [
                c.name.lower() for c in table.columns
            ], (db_id, table.name)
            # tables.json keeps the first column of a composite key only.
            if spider_table.primary_keys:
                assert spider_table.primary_keys[0].lower() == table.primary_keys[0].lower()
            for spider_column, column in zip(spider_table.columns, table.columns):
                key = (db_id, table.name.lower(), column.name.lower())
                if key not in TYPE_DISAGREEMENTS:
                    assert spider_column.type == column.type, key

        extra = FOREIGN_KEYS_MISSING_FROM_TABLES_JSON.get(db_id, set())
        assert _key_set(found) == _key_set(listed) | extra, db_id
    assert checked == 163
